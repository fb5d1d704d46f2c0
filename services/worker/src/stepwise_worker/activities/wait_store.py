"""Postgres side of the long-lived steps' wait rows: open, look in the recent-event buffer, resolve.

Every method is a LOCAL activity (one Struct in, one out) of a class holding the asyncpg pool, so a
wait costs no regular-activity round trip. Ids (wait, task, child run) are allocated by the
workflow (`workflow.uuid4()`) and passed in, so a local activity executed twice (a worker crash
before its marker was recorded) writes the same row once: inserts are `ON CONFLICT DO NOTHING`,
updates are guarded by the status they move from. The other stores of the long-lived steps follow
the same rules: `task_store.py` (human tasks), `child_run_store.py`, `quota_store.py`,
`cancellation_store.py`.

Wait rows are the routing index of SPEC §5.4 (the router signals runs through them); Temporal,
not these rows, decides what a run consumes.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg
from stepwise_contract.payloads import EventSignal
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker import wait_messages as names
from stepwise_worker.activities.command_tag import rows_changed
from stepwise_worker.wait_messages import (
    BufferCheck,
    BufferHit,
    Done,
    OpenWait,
    ResolveWait,
    WaitOpened,
)
from stepwise_worker.workflow.filters import filters_pass

DEFAULT_LOOKBACK_S: Final = 300.0
BUFFER_SCAN_LIMIT: Final = 200


INSERT_WAIT = """
INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key, event_name,
                                timeout_at, status, payload)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'WAITING', $9)
ON CONFLICT (wait_id) DO NOTHING
"""

# Candidates of the recent-event buffer for one wait, oldest first. With no key every key matches,
# so an event buffered under several derived keys is offered once. The run's own trigger event
# (its metadata `eventId`, or the event id inside its fire key `event:<event_id>:<workflow_id>`)
# and events this run already consumed are never offered.
BUFFER_CANDIDATES = """
WITH run AS (
    SELECT started_at,
           trigger_metadata_json ->> 'eventId' AS trigger_event_id,
           substring(trigger_fire_key from '^event:(.*):[^:]*$') AS fire_event_id
    FROM workflow_runs WHERE tenant = $1 AND run_id = $2
), hits AS (
    SELECT DISTINCT ON (e.event_id)
           e.event_id, e.event_name, e.correlation_key, e.payload, e.received_at
    FROM workflow_recent_events e, run
    WHERE e.tenant = $1
      AND e.event_name = $3
      AND ($4::text IS NULL OR e.correlation_key = $4)
      AND e.received_at >= run.started_at
      AND e.received_at >= now() - make_interval(secs => $5)
      AND e.event_id IS DISTINCT FROM run.trigger_event_id
      AND e.event_id IS DISTINCT FROM run.fire_event_id
      AND NOT (e.event_id = ANY ($6::text[]))
    ORDER BY e.event_id, e.received_at
)
SELECT * FROM hits ORDER BY received_at, event_id LIMIT $7
"""

# RETURNING feeds the metrics: only a wait this statement closed is counted
RESOLVE_WAIT = """
UPDATE workflow_run_waits
SET status = $3, resolved_at = now(), payload = coalesce(payload, '{}'::jsonb) || $4::jsonb
WHERE tenant = $1 AND wait_id = $2 AND status = 'WAITING'
RETURNING wait_type,
          CASE WHEN status = 'CANCELED' THEN 'canceled'
               WHEN payload @> '{"timedOut": true}' THEN 'timed_out'
               ELSE 'resolved' END AS outcome
"""


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class WaitStore:
    """The local activities of wait rows."""

    def __init__(self, pool: asyncpg.Pool, *, lookback_s: float = DEFAULT_LOOKBACK_S) -> None:
        self._pool = pool
        self._lookback_s = lookback_s

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.open_wait,
            self.check_buffer,
            self.resolve_wait,
        ]

    @activity.defn(name=names.OPEN_WAIT)
    async def open_wait(self, req: OpenWait) -> WaitOpened:
        status = await self._pool.execute(
            INSERT_WAIT,
            uuid.UUID(req.wait_id), uuid.UUID(req.tenant_id), uuid.UUID(req.run_id), req.step_path,
            req.wait_type, req.key, req.event_name, req.timeout_at, req.payload,
        )  # fmt: skip
        if rows_changed(status):
            metrics.WAITS_OPENED.labels(req.wait_type).inc()
        return WaitOpened(wait_id=req.wait_id)

    @activity.defn(name=names.CHECK_BUFFER)
    async def check_buffer(self, req: BufferCheck) -> BufferHit:
        """The oldest buffered event this wait may consume (name, key, filters), if any."""
        rows = await self._pool.fetch(
            BUFFER_CANDIDATES,
            uuid.UUID(req.tenant_id), uuid.UUID(req.run_id), req.event_name, req.correlation_key,
            self._lookback_s, list(req.consumed_event_ids), BUFFER_SCAN_LIMIT,
        )  # fmt: skip
        for row in rows:
            if filters_pass(req.filters, row["payload"]):
                return BufferHit(
                    event=EventSignal(
                        event_id=row["event_id"],
                        event_name=row["event_name"],
                        correlation_key=row["correlation_key"] or None,
                        payload=row["payload"],
                        received_at=_iso(row["received_at"]),
                    )
                )
        return BufferHit()

    @activity.defn(name=names.RESOLVE_WAIT)
    async def resolve_wait(self, req: ResolveWait) -> Done:
        closed = await self._pool.fetch(
            RESOLVE_WAIT,
            uuid.UUID(req.tenant_id),
            uuid.UUID(req.wait_id),
            req.status,
            req.payload_patch,
        )
        metrics.record_closed_waits(closed)
        return Done(changed=len(closed))
