"""`--replicas api=2,worker=3,event-router=2,sweeper=2`: how many processes of each service a
local stack runs (services not named run once)."""

from __future__ import annotations

from typing import Final

from stepwise_devkit.stack import ALIASES, MAX_REPLICAS, SERVICES

SERVICE_NAMES: Final = tuple(spec.name for spec in SERVICES)


class ReplicasError(ValueError):
    """The `--replicas` text is malformed; the message says where."""


def parse_replicas(text: str) -> dict[str, int]:
    """`service=count` items separated by commas; `router` is short for `event-router`."""
    if not text.strip():
        raise ReplicasError("empty; e.g. api=2,worker=3")
    counts: dict[str, int] = {}
    for item in text.split(","):
        name, eq, raw = (part.strip() for part in item.partition("="))
        if not item.strip():
            raise ReplicasError(f"{text!r}: an empty item (stray comma?)")
        if not eq or not name or not raw:
            raise ReplicasError(f"{item.strip()!r} is not service=count")
        service = ALIASES.get(name, name)
        if service not in SERVICE_NAMES:
            raise ReplicasError(f"{name!r} is not a service ({', '.join(SERVICE_NAMES)})")
        if service in counts:
            raise ReplicasError(f"{service} is given twice")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_REPLICAS:
            raise ReplicasError(f"{service}={raw}: a count from 1 to {MAX_REPLICAS}")
        counts[service] = int(raw)
    return counts
