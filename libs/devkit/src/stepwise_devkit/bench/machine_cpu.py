"""CPU time the whole machine spent, for figures whose two sides do different work.

Read from `/proc/stat`: every process counts (the services, Temporal's server, Postgres, the bench
process and its baseline worker), so "CPU per launched run" compares what a launch costs end to
end, wherever it is spent, without knowing which process does what. Idle and I/O-wait time are not
CPU work and are left out. Another load on the machine inflates both sides alike only if it runs
through both; run the bench on a quiet machine.
"""

from __future__ import annotations

import os
from pathlib import Path

_STAT = Path("/proc/stat")
# user, nice, system, idle, iowait, irq, softirq, steal (guest time is already in user)
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def busy_seconds() -> float | None:
    """CPU-seconds the machine has spent working since boot, or None where there is no
    `/proc/stat` (not Linux)."""
    try:
        first = _STAT.read_text().splitlines()[0]
    except OSError:
        return None
    ticks = [int(v) for v in first.split()[1:]]
    return sum(ticks[i] for i in _BUSY_FIELDS if i < len(ticks)) / os.sysconf("SC_CLK_TCK")


def per_item_ms(before: float | None, after: float | None, items: int) -> float:
    """Milliseconds of machine CPU per item between two readings (NaN when unreadable)."""
    if before is None or after is None or items <= 0:
        return float("nan")
    return (after - before) * 1000 / items
