"""Event-buffer expiry: drop `workflow_recent_events` rows older than the lookback window.

The buffer only serves waits registered within `STEPWISE_EVENT_LOOKBACK_S` of an event (SPEC §5.4),
so older rows are dead weight. Same batching as data-store expiry: short transactions claiming rows
with `FOR UPDATE SKIP LOCKED`, oldest first.
"""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec

from stepwise_sweeper.job import PassResult

DELETE_OLD = """
DELETE FROM workflow_recent_events e
 USING (SELECT tenant, event_name, correlation_key, event_id FROM workflow_recent_events
         WHERE received_at < now() - make_interval(secs => $1)
         ORDER BY received_at
         LIMIT $2
           FOR UPDATE SKIP LOCKED) old
 WHERE e.tenant = old.tenant AND e.event_name = old.event_name
   AND e.correlation_key = old.correlation_key AND e.event_id = old.event_id
"""


class BufferConfig(msgspec.Struct, frozen=True, kw_only=True):
    lookback_s: float = 300.0
    batch_size: int = 1000
    max_batches_per_pass: int = 1000


class BufferJob:
    name = "buffer"

    def __init__(self, pool: asyncpg.Pool, config: BufferConfig) -> None:
        self._pool = pool
        self._config = config

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        deleted = 0
        for _ in range(self._config.max_batches_per_pass):
            if stop.is_set():
                return PassResult(counts={"deleted": deleted}, stopped_early=True)
            status = await self._pool.execute(
                DELETE_OLD, float(self._config.lookback_s), self._config.batch_size
            )
            count = int(status.rsplit(" ", 1)[-1])
            deleted += count
            if count < self._config.batch_size:
                break
        return PassResult(counts={"deleted": deleted})
