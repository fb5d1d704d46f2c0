"""Redaction of every JSON document the API returns (SPEC §9). One function, used by every read.

- A value under a key matching `(secret|token|password|api[_-]?key|authorization)` (any case) or a
  tenant key pattern becomes `"[REDACTED]"`.
- A `$secret` reference shows as `{"$secret": "[SECRET:REDACTED]"}`.
- Tenant JSON pointers apply at the root of each document (a run input, an invocation input or
  output, an event payload, a log context, ...): the value there becomes `"[REDACTED]"`.
Stored data stays unredacted (replay needs it); only what leaves the API is redacted.
The walk is bounded: anything nested deeper than `MAX_READ_DEPTH` is returned as a marker string
(request bodies are refused past 64 levels, so only a document a run built itself can be that deep).
A document whose JSON is over `MAX_READ_DOCUMENT_BYTES` has each string longer than
`MAX_READ_STRING` cut to its first `KEPT_CHARS` characters and a `…[TRUNCATED: N characters]`
marker: a read stays small and the small fields of a large document stay visible. The run export
(a file download) keeps every value whole (`shorten_large=False`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec
from stepwise_contract.platform.secrets import SECRET_REDACTED
from stepwise_contract.redaction import (
    REDACTED,
    SENSITIVE_KEY,
    compile_key_pattern,
    parse_pointer,
)

MAX_READ_DEPTH: Final = 128
TOO_DEEP: Final = f"[TRUNCATED: nested deeper than {MAX_READ_DEPTH} levels]"
MAX_READ_DOCUMENT_BYTES: Final = 1024 * 1024
MAX_READ_STRING: Final = 16 * 1024
KEPT_CHARS: Final = 1024

_encode = msgspec.json.Encoder().encode


def _is_secret_ref(value: dict[str, Any]) -> bool:
    return "$secret" in value and isinstance(value["$secret"], str)


@dataclass(frozen=True)
class Redactor:
    """A tenant's redaction settings, applied with `document(value)`."""

    key_patterns: tuple[re.Pattern[str], ...] = ()
    pointers: tuple[tuple[str, ...], ...] = ()
    # reads cut the long strings of a large document; the export (a download) keeps them whole
    shorten_large: bool = True
    _all_keys: tuple[re.Pattern[str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_all_keys", (SENSITIVE_KEY, *self.key_patterns))

    @classmethod
    def from_settings(cls, key_patterns: Iterable[Any], pointers: Iterable[Any]) -> Redactor:
        """From `tenants.redaction_key_patterns` / `redaction_pointers`; invalid entries are
        ignored (the admin CLI refuses them, an adopted database may still hold some)."""
        compiled: list[re.Pattern[str]] = []
        for source in key_patterns:
            if isinstance(source, str) and source:
                try:
                    compiled.append(compile_key_pattern(source))
                except re.error:
                    continue
        parsed: list[tuple[str, ...]] = []
        for pointer in pointers:
            if isinstance(pointer, str):
                try:
                    parsed.append(tuple(parse_pointer(pointer)))
                except ValueError:
                    continue
        return cls(key_patterns=tuple(compiled), pointers=tuple(parsed))

    def _sensitive(self, key: str) -> bool:
        return any(p.search(key) for p in self._all_keys)

    def _walk(self, value: Any, depth: int = 0) -> Any:
        if isinstance(value, dict | list) and depth >= MAX_READ_DEPTH:
            return TOO_DEEP
        if isinstance(value, dict):
            if _is_secret_ref(value):
                return {**value, "$secret": SECRET_REDACTED}
            return {
                k: (REDACTED if self._sensitive(str(k)) else self._walk(v, depth + 1))
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._walk(v, depth + 1) for v in value]
        return value

    def document(self, value: Any) -> Any:
        """The redacted copy of one JSON document (the input is never modified)."""
        out = self._walk(value)
        for pointer in self.pointers:
            out = _redact_at(out, pointer)
        if (
            self.shorten_large
            and isinstance(out, dict | list | str)
            and len(_encode(out)) > MAX_READ_DOCUMENT_BYTES
        ):
            out = _shortened(out, 0)
        return out


def _shortened(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        if len(value) <= MAX_READ_STRING:
            return value
        return f"{value[:KEPT_CHARS]}…[TRUNCATED: {len(value)} characters]"
    if depth >= MAX_READ_DEPTH:  # already cut by the redaction walk
        return value
    if isinstance(value, dict):
        return {k: _shortened(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_shortened(v, depth + 1) for v in value]
    return value


def _redact_at(doc: Any, pointer: tuple[str, ...]) -> Any:
    if not pointer:
        return REDACTED if doc is not None else doc
    parent = doc
    for segment in pointer[:-1]:
        parent = _child(parent, segment)
        if parent is None:
            return doc
    last = pointer[-1]
    if isinstance(parent, dict) and last in parent:
        parent[last] = REDACTED
    elif isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        parent[int(last)] = REDACTED
    return doc


def _child(value: Any, segment: str) -> Any:
    if isinstance(value, dict):
        return value.get(segment)
    if isinstance(value, list) and segment.isdigit() and int(segment) < len(value):
        return value[int(segment)]
    return None


PLAIN = Redactor()
