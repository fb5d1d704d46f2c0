"""Data-store expiry: delete `workflow_data_store` rows whose `expires_at` has passed.

Each batch is one short transaction that claims up to `batch_size` expired rows with
`FOR UPDATE SKIP LOCKED` and deletes them, so
- a sweeper never waits for a row lock: rows a `store.set` upsert (or another sweeper replica)
  holds are skipped and picked up by a later batch — no deadlock is possible, and two replicas
  never delete the same row;
- a writer waits at most for one batch (milliseconds) when it upserts a key being deleted;
- a row revived by an upsert (new `expires_at`) is re-checked under the lock and not deleted.

Fairness across tenants: batches take the rows that expired first, whatever their tenant. Expired
rows are already invisible to readers (lazy expiry), so the only cost of a row waiting for the
sweeper is storage; oldest-first bounds every tenant's lag by the same backlog/throughput, a tenant
with a million expired rows cannot push back another tenant's row that expired earlier, and it uses
the `expires_at` partial index directly. Round-robin over tenants would need a `DISTINCT tenant`
scan of the backlog each pass and would delete newer rows of small tenants before older rows of
big ones.
"""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import structlog

from stepwise_sweeper.job import PassResult

log = structlog.get_logger("stepwise_sweeper.expiry")

DELETE_EXPIRED = """
DELETE FROM workflow_data_store
 WHERE store_id IN (
        SELECT store_id FROM workflow_data_store
         WHERE expires_at IS NOT NULL AND expires_at <= now()
         ORDER BY expires_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED)
"""


class ExpiryConfig(msgspec.Struct, frozen=True, kw_only=True):
    batch_size: int = 1000
    # bounds one pass (and so the time between its log lines) when rows expire faster than
    # they are deleted; the next pass continues where this one stopped
    max_batches_per_pass: int = 1000


class ExpiryJob:
    name = "expiry"

    def __init__(self, pool: asyncpg.Pool, config: ExpiryConfig) -> None:
        self._pool = pool
        self._config = config

    async def delete_batch(self) -> int:
        """Delete one batch of expired rows in its own transaction; how many were deleted."""
        status = await self._pool.execute(DELETE_EXPIRED, self._config.batch_size)
        return int(status.rsplit(" ", 1)[-1])

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        deleted = 0
        batches = 0
        while batches < self._config.max_batches_per_pass:
            if stop.is_set():
                return PassResult(counts={"deleted": deleted}, stopped_early=True)
            count = await self.delete_batch()
            batches += 1
            deleted += count
            # A short batch means the backlog is drained, or the rest is locked by writers or
            # another replica (their rows come back in a later pass).
            if count < self._config.batch_size:
                break
        return PassResult(counts={"deleted": deleted})
