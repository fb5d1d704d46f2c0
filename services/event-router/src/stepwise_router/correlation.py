"""Correlation keys of an event (SPEC §8 step 4).

An explicit `workflow_correlation_key` (trimmed, non-empty) is the only key. Otherwise the keys are
derived from the payload: the paths configured for the event type, then the `*` paths, each a dotted
path into the payload (a leading `$.` is ignored; a numeric segment indexes a list). Values that are
strings, numbers or booleans become keys (numbers as JSON renders them: `5`, never `5.0`), trimmed,
empty ones dropped, duplicates removed in order. The first key is the event's primary key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from stepwise_contract.envelope import EventEnvelope


class Correlation:
    """Derives correlation keys with one configured map of event type → payload paths."""

    def __init__(self, paths: Mapping[str, Sequence[str]]) -> None:
        self._split = {
            event_type: [_split(path) for path in items] for event_type, items in paths.items()
        }

    def keys(self, envelope: EventEnvelope) -> list[str]:
        explicit = (envelope.workflow_correlation_key or "").strip()
        if explicit:
            return [explicit]
        payload = envelope.payload or {}
        keys: list[str] = []
        for path in [*self._split.get(envelope.event_type, []), *self._split.get("*", [])]:
            key = _as_key(_read(payload, path))
            if key and key not in keys:
                keys.append(key)
        return keys


def _split(path: str) -> list[str]:
    path = path.strip()
    if path.startswith("$."):
        path = path[2:]
    return [segment for segment in path.split(".") if segment]


def _read(document: Any, path: list[str]) -> Any:
    current = document
    for segment in path:
        if isinstance(current, dict):
            current = current.get(segment)
        elif isinstance(current, list) and segment.isdigit() and int(segment) < len(current):
            current = current[int(segment)]
        else:
            return None
    return current


def _as_key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else repr(value)
    return None
