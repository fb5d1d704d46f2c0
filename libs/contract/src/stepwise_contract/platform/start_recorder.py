"""Recording launched runs' Temporal run ids off the request path, many in one statement.

A launch answers once Temporal has started its run; writing the run id into the row is
bookkeeping nobody waits for. `StartRecorder` queues the ids and one background task writes
whatever has queued in one `UPDATE … FROM unnest(…)`, so under load a launch costs one statement
less and its answer does not wait for it.

A row whose id is never written (the process died, or Postgres failed the write twice) is what
a crash between start and record always left: the sweeper's launch reconciliation finds it after
its grace period, and its idempotent start finds the existing workflow and records its run id.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import structlog

from stepwise_contract.platform.db import Executor

log = structlog.get_logger("stepwise.launch")

_RECORD_MANY = """
UPDATE workflow_runs r SET temporal_run_id = s.temporal_run_id, updated_at = now()
  FROM unnest($1::uuid[], $2::text[]) AS s(run_id, temporal_run_id)
 WHERE r.run_id = s.run_id AND r.temporal_run_id IS NULL
"""

RETRY_AFTER_S = 0.5


class StartRecorder:
    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self._pending: dict[uuid.UUID, str] = {}
        self._queued = asyncio.Event()
        self._closing = False

    def record(self, run_id: uuid.UUID, temporal_run_id: str) -> None:
        self._pending[run_id] = temporal_run_id
        self._queued.set()

    async def flush(self) -> None:
        """Write everything queued; a batch Postgres refuses twice is left to reconciliation."""
        while self._pending:
            batch, self._pending = self._pending, {}
            for attempt in (1, 2):
                try:
                    await self._pool.execute(_RECORD_MANY, list(batch), list(batch.values()))
                    break
                except Exception as exc:
                    if attempt == 2:
                        log.warning("start_record_failed", runs=len(batch), error=str(exc))
                    else:
                        await asyncio.sleep(RETRY_AFTER_S)

    async def _run(self) -> None:
        while not self._closing:
            await self._queued.wait()
            self._queued.clear()
            await self.flush()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[StartRecorder]:
        """The background writer for the enclosed block; what is queued at its end is written."""
        self._closing = False
        task = asyncio.create_task(self._run(), name="start-recorder")
        try:
            yield self
        finally:
            # let a write in flight finish (cancelling it would drop its batch), then the rest
            self._closing = True
            self._queued.set()
            await task
            await self.flush()
