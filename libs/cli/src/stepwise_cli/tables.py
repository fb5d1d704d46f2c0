"""Readable terminal output of the operator commands: aligned tables, times and durations."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces; `None` shows as `-`."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, value in enumerate(row):
            widths[i] = max(widths[i], len(value))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    return str(value)


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_time(value: Any) -> str:
    """`2024-05-01 12:03:04` (UTC) from an ISO timestamp."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if parsed else "-"


def clock(value: Any) -> str:
    """`12:03:04.123` (UTC) for a progress line."""
    parsed = parse_time(value)
    return parsed.astimezone(UTC).strftime("%H:%M:%S.%f")[:-3] if parsed else "--:--:--.---"


def duration(ms: Any) -> str:
    if not isinstance(ms, int | float):
        return "-"
    if ms < 1000:
        return f"{int(ms)} ms"
    seconds = ms / 1000
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def elapsed_ms(started: Any, completed: Any) -> float | None:
    """Milliseconds between two ISO timestamps; until now when `completed` is empty."""
    start = parse_time(started)
    if start is None:
        return None
    end = parse_time(completed) or datetime.now(UTC)
    return max(0.0, (end - start).total_seconds() * 1000)
