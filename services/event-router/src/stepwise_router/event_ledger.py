"""The event ledger: `workflow_runtime_events` (the dedupe key and the API's view of routing)
and the recent-event buffer `workflow_recent_events` (SPEC §5.4).

The buffer holds one row per (event, correlation key) — the key `''` when the event has none — so
a wait keyed on any derived key finds it, and a wait without a key finds it by name alone (the
worker reads it with `DISTINCT ON (event_id)`).
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import msgspec
from stepwise_contract.envelope import EventEnvelope

from stepwise_router.group_commit import Batching

# One statement, so the event row and its buffer rows commit together, and one round trip for
# steps 2, 3 and 5 of SPEC §8 (the router's profile is dominated by statement round trips). A
# suspended tenant's event is recorded as processed with an error and gets no buffer rows. The
# buffer rows are written on a redelivery of an event whose processing crashed midway (rows exist,
# `DO NOTHING`), but never for an event already processed: after its buffer rows expired, a late
# duplicate must not offer an old event to a new wait.
RECORD = """
WITH tenant AS (
    SELECT coalesce((SELECT suspended FROM tenants WHERE tenant = $1), false) AS suspended
), done AS (
    SELECT 1 FROM workflow_runtime_events
    WHERE tenant = $1 AND event_id = $2 AND processed_at IS NOT NULL
), event AS (
    INSERT INTO workflow_runtime_events (tenant, event_id, event_name, event_type, correlation_key,
                                         correlation_keys, payload, payload_schema_ref,
                                         processed_at, error_message)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8,
           CASE WHEN tenant.suspended THEN now() END,
           CASE WHEN tenant.suspended THEN $10 END
    FROM tenant
    ON CONFLICT (tenant, event_id) DO NOTHING
    RETURNING 1
), buffer AS (
    INSERT INTO workflow_recent_events (tenant, event_id, event_name, correlation_key, payload)
    SELECT $1, $2, $3, k, $7 FROM unnest($9::text[]) AS k
    WHERE NOT EXISTS (SELECT 1 FROM done) AND NOT (SELECT suspended FROM tenant)
    ON CONFLICT DO NOTHING
)
SELECT EXISTS (SELECT 1 FROM event) AS inserted, EXISTS (SELECT 1 FROM done) AS processed,
       (SELECT suspended FROM tenant) AS suspended
"""

# `RECORD` for a batch of events (group commit, `group_commit.py`): the same three writes and
# answers, one row of input per event (`ord` is its index in the batch). Rows are written in key
# order, so two replicas recording overlapping batches take their row locks in the same order.
RECORD_MANY = """
WITH input AS (
    SELECT i.*, coalesce(t.suspended, false) AS suspended,
           EXISTS (SELECT 1 FROM workflow_runtime_events e
                   WHERE e.tenant = i.tenant AND e.event_id = i.event_id
                     AND e.processed_at IS NOT NULL) AS processed
    FROM jsonb_to_recordset($1::jsonb) AS i(ord int, tenant uuid, event_id text, event_name text,
                                            event_type text, keys text[], payload jsonb,
                                            payload_schema_ref text)
    LEFT JOIN tenants t ON t.tenant = i.tenant
), event AS (
    INSERT INTO workflow_runtime_events (tenant, event_id, event_name, event_type, correlation_key,
                                         correlation_keys, payload, payload_schema_ref,
                                         processed_at, error_message)
    SELECT tenant, event_id, event_name, event_type, keys[1], keys, payload, payload_schema_ref,
           CASE WHEN suspended THEN now() END,
           CASE WHEN suspended THEN $2 END
    FROM input ORDER BY tenant, event_id
    ON CONFLICT (tenant, event_id) DO NOTHING
    RETURNING tenant, event_id
), buffer AS (
    INSERT INTO workflow_recent_events (tenant, event_id, event_name, correlation_key, payload)
    SELECT i.tenant, i.event_id, i.event_name, k, i.payload
    FROM input i, unnest(CASE WHEN cardinality(i.keys) > 0 THEN i.keys ELSE ARRAY[''] END) AS k
    WHERE NOT i.processed AND NOT i.suspended
    ORDER BY i.tenant, i.event_name, k, i.event_id
    ON CONFLICT DO NOTHING
)
SELECT i.ord, i.processed, i.suspended,
       EXISTS (SELECT 1 FROM event e WHERE e.tenant = i.tenant AND e.event_id = i.event_id)
           AS inserted
FROM input i
"""

# The row of a concurrent first delivery is only visible once that statement committed; asking
# again in a new statement (new snapshot) tells whether it has finished.
PROCESSED = """
SELECT processed_at IS NOT NULL FROM workflow_runtime_events WHERE tenant = $1 AND event_id = $2
"""

FINISH = """
UPDATE workflow_runtime_events
SET processed_at = now(), matched_run_id = $3, matched_wait_id = $4, signaled_run_ids = $5,
    started_run_ids = $6, error_message = $7
WHERE tenant = $1 AND event_id = $2
"""

FINISH_MANY = """
UPDATE workflow_runtime_events e
SET processed_at = now(), matched_run_id = i.matched_run_id, matched_wait_id = i.matched_wait_id,
    signaled_run_ids = i.signaled_run_ids, started_run_ids = i.started_run_ids,
    error_message = i.error_message
FROM (SELECT * FROM jsonb_to_recordset($1::jsonb) AS i(
          tenant uuid, event_id text, matched_run_id uuid, matched_wait_id uuid,
          signaled_run_ids uuid[], started_run_ids uuid[], error_message text)
      ORDER BY tenant, event_id) i
WHERE e.tenant = i.tenant AND e.event_id = i.event_id
"""

SUSPENDED_MESSAGE = "tenant is suspended: event recorded, not routed"


class Recorded(enum.Enum):
    SUSPENDED = "suspended"  # the tenant is suspended: recorded with an error, not routed
    NEW = "new"  # first delivery
    UNFINISHED = "unfinished"  # a redelivery of one that crashed before finishing: route again
    PROCESSED = "processed"  # a duplicate of an event already routed: ack and ignore


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """What routing did with one event, as written back to its row."""

    signaled_run_ids: list[uuid.UUID]
    matched_wait_id: uuid.UUID | None
    started_run_ids: list[uuid.UUID]
    errors: list[str]

    @property
    def matched_run_id(self) -> uuid.UUID | None:
        """The first signalled run, else the first started one (as the reference system)."""
        runs = self.signaled_run_ids or self.started_run_ids
        return runs[0] if runs else None


_Record = tuple[uuid.UUID, EventEnvelope, list[str]]
_Finish = tuple[uuid.UUID, str, Outcome]


class Ledger:
    """`record` and `finish` are group commits: concurrent calls share one statement."""

    def __init__(self, pool: asyncpg.Pool, batching: Batching | None = None) -> None:
        self._pool = pool
        batching = batching or Batching()
        self._record = batching.commit(
            "record",
            self._record_many,
            lambda item: self._record_one(*item),
            key=lambda item: (item[0], item[1].event_id),
        )
        self._finish = batching.commit(
            "finish",
            self._finish_many,
            lambda item: self._finish_one(*item),
            key=lambda item: (item[0], item[1]),
        )

    def _row(self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str]) -> list[Any]:
        return [
            tenant, env.event_id, env.name, env.event_type, keys[0] if keys else None, keys,
            env.payload or {}, env.payload_schema_ref,
        ]  # fmt: skip

    async def record(self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str]) -> Recorded:
        """Record the event and its buffer rows unless it was processed already (dedupe), or
        as processed with an error when the tenant is suspended (an unknown tenant is not)."""
        return await self._record((tenant, env, keys))

    async def finish(self, tenant: uuid.UUID, event_id: str, outcome: Outcome) -> None:
        """Write what routing did; durable (committed) when this returns."""
        await self._finish((tenant, event_id, outcome))

    async def _record_many(self, items: Sequence[_Record]) -> list[Recorded]:
        rows = await self._pool.fetch(
            RECORD_MANY,
            [
                {
                    "ord": n, "tenant": tenant, "event_id": env.event_id, "event_name": env.name,
                    "event_type": env.event_type, "keys": keys, "payload": env.payload or {},
                    "payload_schema_ref": env.payload_schema_ref,
                }
                for n, (tenant, env, keys) in enumerate(items)
            ],
            SUSPENDED_MESSAGE,
        )  # fmt: skip
        by_ord = {row["ord"]: row for row in rows}

        async def outcome(n: int, tenant: uuid.UUID, event_id: str) -> Recorded:
            row = by_ord[n]
            if row["suspended"]:
                return Recorded.SUSPENDED
            if row["inserted"]:
                return Recorded.NEW
            if row["processed"] or await self._pool.fetchval(PROCESSED, tenant, event_id):
                return Recorded.PROCESSED
            return Recorded.UNFINISHED

        return list(
            await asyncio.gather(
                *(outcome(n, tenant, env.event_id) for n, (tenant, env, _) in enumerate(items))
            )
        )

    async def _finish_many(self, items: Sequence[_Finish]) -> list[None]:
        await self._pool.execute(
            FINISH_MANY,
            [
                {
                    "tenant": tenant, "event_id": event_id,
                    "matched_run_id": outcome.matched_run_id,
                    "matched_wait_id": outcome.matched_wait_id,
                    "signaled_run_ids": outcome.signaled_run_ids,
                    "started_run_ids": outcome.started_run_ids,
                    "error_message": "; ".join(outcome.errors) or None,
                }
                for tenant, event_id, outcome in items
            ],
        )  # fmt: skip
        return [None] * len(items)

    async def _record_one(self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str]) -> Recorded:
        row = await self._pool.fetchrow(
            RECORD, *self._row(tenant, env, keys), keys or [""], SUSPENDED_MESSAGE
        )
        assert row is not None
        if row["suspended"]:
            return Recorded.SUSPENDED
        if row["inserted"]:
            return Recorded.NEW
        if row["processed"] or await self._pool.fetchval(PROCESSED, tenant, env.event_id):
            return Recorded.PROCESSED
        return Recorded.UNFINISHED

    async def _finish_one(self, tenant: uuid.UUID, event_id: str, outcome: Outcome) -> None:
        await self._pool.execute(
            FINISH,
            tenant, event_id, outcome.matched_run_id, outcome.matched_wait_id,
            outcome.signaled_run_ids, outcome.started_run_ids,
            "; ".join(outcome.errors) or None,
        )  # fmt: skip
