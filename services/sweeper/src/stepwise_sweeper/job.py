"""What a sweeper job is to the scheduler: a name and one bounded pass at a time.

A pass does its work in short transactions and looks at `stop` between them, so SIGTERM ends it
after the current batch (committed or rolled back as a whole) instead of in the middle of one.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import msgspec


class PassResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one pass did: row counts by outcome (e.g. `{"deleted": 1000}`), levels measured at
    its end (e.g. `{"workflow_task_failing": 2}`), and whether it returned early because the
    service is stopping."""

    counts: dict[str, int] = {}
    gauges: dict[str, int] = {}
    stopped_early: bool = False


class Job(Protocol):
    @property
    def name(self) -> str: ...

    async def run_pass(self, stop: asyncio.Event) -> PassResult: ...
