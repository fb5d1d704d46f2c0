"""Postgres side of the long-lived steps: waits, human tasks, child runs, quota, cancellation.

Every method is a LOCAL activity (one Struct in, one out) of a class holding the asyncpg pool, so a
wait costs no regular-activity round trip. Ids (wait, task, child run) are allocated by the
workflow (`workflow.uuid4()`) and passed in, so a local activity executed twice (a worker crash
before its marker was recorded) writes the same row once: inserts are `ON CONFLICT DO NOTHING`,
updates are guarded by the status they move from.

Wait rows are the routing index of SPEC §5.4 (the router signals runs through them); Temporal,
not these rows, decides what a run consumes. The quota reservation is also offered as SQL
fragments (`quota_ctes`, `quota_figures`) so the step-start projection reserves a unit and writes
the step's row in one statement.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any, Final

import asyncpg
from stepwise_contract.names import workflow_id_for
from stepwise_contract.payloads import EventSignal
from stepwise_contract.platform.launch import NewRun, insert_run
from stepwise_contract.priority import DEFAULT_PRIORITY
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stepwise_worker import metrics
from stepwise_worker import wait_messages as names
from stepwise_worker.filters import filters_pass
from stepwise_worker.wait_messages import (
    BufferCheck,
    BufferHit,
    CancelRun,
    ChildRunCreated,
    ChildRunStarted,
    CreateChildRun,
    CreateHumanTask,
    Done,
    OpenWait,
    PauseForQuota,
    QuotaReservation,
    ReserveQuota,
    ResolveHumanTask,
    ResolveWait,
    ResumeFromQuota,
    WaitOpened,
)

QUOTA_REASON: Final = "workflow_step_quota_exceeded"
QUOTA_MESSAGE: Final = "Workflow step quota exceeded for current billing period"
DEFAULT_LOOKBACK_S: Final = 300.0
BUFFER_SCAN_LIMIT: Final = 200


# -- SQL ---------------------------------------------------------------------------------------

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

INSERT_TASK = """
INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title, description,
                            context_data, form_schema, status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'PENDING')
ON CONFLICT (task_id) DO NOTHING
"""

RESOLVE_TASK = """
UPDATE workflow_tasks
SET status = $3, response_json = coalesce($4::jsonb, response_json), updated_at = now(),
    completed_at = CASE WHEN $3 = 'COMPLETED' THEN now() ELSE completed_at END
WHERE tenant = $1 AND task_id = $2 AND status = 'PENDING'
"""

# Given a version: that one; else the latest published. `workflow_id` may be the uuid or the key.
# The child runs at its parent's priority: Temporal gives a child workflow its parent's priority
# key and fairness key, and the row records what the task queue really uses.
CHILD_VERSION = """
SELECT v.workflow_id, v.version, v.definition_hash,
       (SELECT p.priority FROM workflow_runs p WHERE p.tenant = $1 AND p.run_id = $4)
           AS parent_priority
FROM workflow_definition_versions v
JOIN workflow_definitions d ON d.workflow_id = v.workflow_id AND d.tenant = v.tenant
WHERE v.tenant = $1 AND (d.workflow_id::text = $2 OR d.key = $2)
  AND ($3::int IS NULL OR v.version = $3)
ORDER BY v.version DESC
LIMIT 1
"""


# Quota reservation as two CTEs, `lim` (the tenant's limit and current period: the UTC calendar
# month) and `reserved` (one row when a unit was reserved), to splice into a statement.
# The limit is read from `tenants` at each reservation, so a raised limit takes effect at once; a
# tenant without a row (or a NULL limit) is unlimited but still counted.
# ON CONFLICT … DO UPDATE … WHERE locks the counter row and re-checks on its latest version, so
# concurrent reservations never exceed the limit.
def quota_ctes(tenant: str, gate: str = "true") -> str:
    """`lim` and `reserved` for tenant parameter `tenant`, reserving only when `gate` holds."""
    return f"""lim AS (
    SELECT (SELECT step_quota_limit FROM tenants WHERE tenant = {tenant}) AS quota,
           date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS p_start,
           (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month')
               AT TIME ZONE 'UTC' AS p_end
), reserved AS (
    INSERT INTO workflow_step_usage_periods AS u
        (tenant, period_start, period_end, effective_limit, used_count)
    SELECT {tenant}, lim.p_start, lim.p_end, lim.quota, 1
    FROM lim WHERE ({gate}) AND (lim.quota IS NULL OR lim.quota > 0)
    ON CONFLICT (tenant, period_start) DO UPDATE
        SET used_count = u.used_count + 1, effective_limit = excluded.effective_limit,
            updated_at = now()
        WHERE excluded.effective_limit IS NULL OR u.used_count < excluded.effective_limit
    RETURNING u.used_count, u.effective_limit
)"""


def quota_figures(tenant: str) -> str:
    """Select-list of the reservation's outcome (after `quota_ctes`); when refused, the figures
    come from the statement's snapshot (display only)."""
    return f"""(SELECT count(*) FROM reserved) = 1 AS quota_reserved,
       coalesce((SELECT effective_limit FROM reserved), (SELECT quota FROM lim)) AS quota_limit,
       coalesce((SELECT used_count FROM reserved),
                (SELECT used_count FROM workflow_step_usage_periods
                 WHERE tenant = {tenant} AND period_start = (SELECT p_start FROM lim)), 0)
           AS quota_used,
       (SELECT p_start FROM lim) AS quota_period_start,
       (SELECT p_end FROM lim) AS quota_period_end"""


RESERVE_STEP = f"""
WITH {quota_ctes("$1")}
SELECT {quota_figures("$1")}
"""


def reservation_of(row: asyncpg.Record) -> QuotaReservation:
    """The outcome of a statement that selected `quota_figures`."""
    return QuotaReservation(
        reserved=bool(row["quota_reserved"]),
        limit=row["quota_limit"],
        used=int(row["quota_used"]),
        period_start=row["quota_period_start"],
        period_end=row["quota_period_end"],
    )


PAUSE_RUN = """
UPDATE workflow_runs
SET status = 'WAITING', node_path = $3, error_json = $4, updated_at = now()
WHERE tenant = $1 AND run_id = $2 AND status IN ('RUNNING', 'WAITING')
"""

RESUME_RUN = """
UPDATE workflow_runs
SET status = 'RUNNING', error_json = NULL, updated_at = now()
WHERE tenant = $1 AND run_id = $2 AND status = 'WAITING'
"""

LOCK_RUN = "SELECT 1 FROM workflow_runs WHERE tenant = $1 AND run_id = $2 FOR UPDATE"

CANCEL_STEPS = """
UPDATE workflow_run_steps
SET status = 'CANCELED', completed_at = now(),
    duration_ms = (extract(epoch FROM now() - started_at) * 1000)::int
WHERE tenant = $1 AND run_id = $2 AND status = 'STARTED'
RETURNING step_type, status, duration_ms
"""

CANCEL_WAITS = """
UPDATE workflow_run_waits SET status = 'CANCELED', resolved_at = now()
WHERE tenant = $1 AND run_id = $2 AND status = 'WAITING'
RETURNING wait_type, 'canceled' AS outcome
"""

CANCEL_TASKS = """
UPDATE workflow_tasks SET status = 'CANCELED', updated_at = now()
WHERE tenant = $1 AND run_id = $2 AND status = 'PENDING'
"""

# A child run row written just before the parent was cancelled, whose child workflow never
# started: cancel it here, or launch reconciliation would start it without its parent.
CANCEL_UNSTARTED_CHILDREN = """
UPDATE workflow_runs
SET status = 'CANCELED', completed_at = now(), updated_at = now(), error_json = $3
WHERE tenant = $1 AND parent_run_id = $2 AND temporal_run_id IS NULL AND status = 'RUNNING'
"""

CANCEL_RUN = """
UPDATE workflow_runs
SET status = 'CANCELED', node_path = NULL, completed_at = now(), updated_at = now(),
    error_json = $3
WHERE tenant = $1 AND run_id = $2 AND status IN ('RUNNING', 'WAITING')
"""


def _changed(status: str) -> int:
    """Rows touched, from asyncpg's command tag (`UPDATE 3`, `INSERT 0 1`)."""
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


async def reserve_step_unit(
    conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str
) -> QuotaReservation:
    """Reserve one step start of the tenant's quota for the current period (SPEC §5.5)."""
    row = await conn.fetchrow(RESERVE_STEP, _uuid(tenant_id))
    assert row is not None
    return reservation_of(row)


def quota_pause_payload(reservation: QuotaReservation) -> dict[str, Any]:
    """What a quota wait records (and the API's `quotaPause` shows)."""
    return {
        "reason": QUOTA_REASON,
        "periodStart": _iso(reservation.period_start),
        "periodEnd": _iso(reservation.period_end),
        "usedCount": reservation.used,
        "effectiveLimit": reservation.limit,
        "periodSource": "fallback_calendar",
        "limitSource": "tenant",
    }


class WaitStore:
    """The local activities of waits, human tasks, child runs, quota and cancellation."""

    def __init__(self, pool: asyncpg.Pool, *, lookback_s: float = DEFAULT_LOOKBACK_S) -> None:
        self._pool = pool
        self._lookback_s = lookback_s

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.open_wait,
            self.check_buffer,
            self.resolve_wait,
            self.create_human_task,
            self.resolve_human_task,
            self.create_child_run,
            self.record_child_started,
            self.reserve_quota,
            self.pause_for_quota,
            self.resume_from_quota,
            self.cancel_run,
        ]

    @activity.defn(name=names.OPEN_WAIT)
    async def open_wait(self, req: OpenWait) -> WaitOpened:
        status = await self._pool.execute(
            INSERT_WAIT,
            _uuid(req.wait_id), _uuid(req.tenant_id), _uuid(req.run_id), req.step_path,
            req.wait_type, req.key, req.event_name, req.timeout_at, req.payload,
        )  # fmt: skip
        if _changed(status):
            metrics.WAITS_OPENED.labels(req.wait_type).inc()
        return WaitOpened(wait_id=req.wait_id)

    @activity.defn(name=names.CHECK_BUFFER)
    async def check_buffer(self, req: BufferCheck) -> BufferHit:
        """The oldest buffered event this wait may consume (name, key, filters), if any."""
        rows = await self._pool.fetch(
            BUFFER_CANDIDATES,
            _uuid(req.tenant_id), _uuid(req.run_id), req.event_name, req.correlation_key,
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
            RESOLVE_WAIT, _uuid(req.tenant_id), _uuid(req.wait_id), req.status, req.payload_patch
        )
        metrics.record_closed_waits(closed)
        return Done(changed=len(closed))

    @activity.defn(name=names.CREATE_HUMAN_TASK)
    async def create_human_task(self, req: CreateHumanTask) -> WaitOpened:
        """The `workflow_tasks` row and its `human` wait (keyed by the task id), together."""
        tenant, run = _uuid(req.tenant_id), _uuid(req.run_id)
        wait_payload = {
            "taskId": req.task_id,
            "taskType": req.task_type,
            "formSchema": req.form_schema,
            "contextData": req.context_data,
        }
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_TASK,
                _uuid(req.task_id), tenant, run, req.step_path, req.task_type, req.title,
                req.description, req.context_data, req.form_schema,
            )  # fmt: skip
            opened = await conn.execute(
                INSERT_WAIT,
                _uuid(req.wait_id), tenant, run, req.step_path, "human", req.task_id,
                req.event_name, None, wait_payload,
            )  # fmt: skip
        if _changed(opened):
            metrics.WAITS_OPENED.labels("human").inc()
        return WaitOpened(wait_id=req.wait_id)

    @activity.defn(name=names.RESOLVE_HUMAN_TASK)
    async def resolve_human_task(self, req: ResolveHumanTask) -> Done:
        tenant = _uuid(req.tenant_id)
        wait_status = "RESOLVED" if req.status == "COMPLETED" else "CANCELED"
        patch: dict[str, Any] = {"taskId": req.task_id}
        if req.status == "COMPLETED":
            patch |= {"eventName": req.event_name, "response": req.response}
        async with self._pool.acquire() as conn, conn.transaction():
            task = await conn.execute(
                RESOLVE_TASK,
                tenant, _uuid(req.task_id), req.status,
                req.response if req.status == "COMPLETED" else None,
            )  # fmt: skip
            closed = await conn.fetch(RESOLVE_WAIT, tenant, _uuid(req.wait_id), wait_status, patch)
        metrics.record_closed_waits(closed)
        return Done(changed=_changed(task))

    @activity.defn(name=names.CREATE_CHILD_RUN)
    async def create_child_run(self, req: CreateChildRun) -> ChildRunCreated:
        """The child's run row (own id, parent and root ids, pinned version), before its start."""
        tenant = _uuid(req.tenant_id)
        found = await self._pool.fetchrow(
            CHILD_VERSION, tenant, req.workflow_id, req.workflow_version, _uuid(req.parent_run_id)
        )
        if found is None:
            wanted = "latest" if req.workflow_version is None else req.workflow_version
            raise ApplicationError(
                f"child workflow {req.workflow_id} has no published version {wanted}",
                {"code": "UNKNOWN_CHILD_WORKFLOW", "workflowId": req.workflow_id},
                type="ValidationError",
                non_retryable=True,
            )
        metadata: dict[str, Any] = {
            "parentRunId": req.parent_run_id,
            "rootRunId": req.root_run_id,
            "parentStepPath": req.parent_step_path,
        }
        if req.retry_of_run_id is not None:
            metadata["retryOfRunId"] = req.retry_of_run_id
        # Already inserted when this activity ran before and its marker was lost: ours.
        with contextlib.suppress(asyncpg.UniqueViolationError):
            await insert_run(
                self._pool,
                NewRun(
                    run_id=_uuid(req.child_run_id),
                    tenant=tenant,
                    workflow_id=found["workflow_id"],
                    workflow_version=int(found["version"]),
                    input_json=req.payload if req.payload is not None else {},
                    definition_hash=found["definition_hash"],
                    trigger_metadata=metadata,
                    parent_run_id=_uuid(req.parent_run_id),
                    root_run_id=_uuid(req.root_run_id),
                    priority=found["parent_priority"] or DEFAULT_PRIORITY,
                ),
            )
        return ChildRunCreated(
            child_run_id=req.child_run_id,
            workflow_id=str(found["workflow_id"]),
            workflow_version=int(found["version"]),
            temporal_workflow_id=workflow_id_for(req.child_run_id),
        )

    @activity.defn(name=names.CHILD_RUN_STARTED)
    async def record_child_started(self, req: ChildRunStarted) -> Done:
        status = await self._pool.execute(
            "UPDATE workflow_runs SET temporal_run_id = $3, updated_at = now()"
            " WHERE tenant = $1 AND run_id = $2 AND temporal_run_id IS NULL",
            _uuid(req.tenant_id), _uuid(req.child_run_id), req.temporal_run_id,
        )  # fmt: skip
        return Done(changed=_changed(status))

    @activity.defn(name=names.RESERVE_QUOTA)
    async def reserve_quota(self, req: ReserveQuota) -> QuotaReservation:
        return await reserve_step_unit(self._pool, req.tenant_id)

    @activity.defn(name=names.PAUSE_FOR_QUOTA)
    async def pause_for_quota(self, req: PauseForQuota) -> Done:
        """Run `WAITING` with a `quota` wait and a `QuotaExceeded` error (no step row yet)."""
        details = quota_pause_payload(req.reservation)
        error = {
            "category": "QuotaExceeded",
            "message": QUOTA_MESSAGE,
            "nodePath": req.step_path,
            "at": req.at.isoformat(),
            "code": "STEP_QUOTA_EXCEEDED",
            "details": details,
        }
        tenant, run = _uuid(req.tenant_id), _uuid(req.run_id)
        async with self._pool.acquire() as conn, conn.transaction():
            opened = await conn.execute(
                INSERT_WAIT,
                _uuid(req.wait_id), tenant, run, req.step_path, "quota", None, None,
                req.reservation.period_end, details,
            )  # fmt: skip
            status = await conn.execute(PAUSE_RUN, tenant, run, req.step_path, error)
        if _changed(opened):  # once per pause, however often this local activity ran
            metrics.WAITS_OPENED.labels("quota").inc()
            metrics.QUOTA_PAUSES.inc()
        return Done(changed=_changed(status))

    @activity.defn(name=names.RESUME_FROM_QUOTA)
    async def resume_from_quota(self, req: ResumeFromQuota) -> Done:
        """The quota wait resolved and the run `RUNNING` again (the API may have done it first)."""
        tenant = _uuid(req.tenant_id)
        async with self._pool.acquire() as conn, conn.transaction():
            closed = await conn.fetch(RESOLVE_WAIT, tenant, _uuid(req.wait_id), "RESOLVED", {})
            status = await conn.execute(RESUME_RUN, tenant, _uuid(req.run_id))
        metrics.record_closed_waits(closed)
        return Done(changed=_changed(status))

    @activity.defn(name=names.CANCEL_RUN)
    async def cancel_run(self, req: CancelRun) -> Done:
        """Temporal cancelled the run: running steps, open waits, pending tasks and the run."""
        tenant, run = _uuid(req.tenant_id), _uuid(req.run_id)
        error = {
            "category": "Cancellation",
            "message": req.message,
            "nodePath": req.node_path,
            "at": req.at.isoformat(),
        }
        async with self._pool.acquire() as conn, conn.transaction():
            # The run row first, as the API's cancel does: the same lock order on both sides,
            # so an operator's cancel and this cleanup serialise instead of deadlocking.
            await conn.execute(LOCK_RUN, tenant, run)
            steps = await conn.fetch(CANCEL_STEPS, tenant, run)
            waits = await conn.fetch(CANCEL_WAITS, tenant, run)
            await conn.execute(CANCEL_TASKS, tenant, run)
            await conn.execute(CANCEL_UNSTARTED_CHILDREN, tenant, run, error)
            status = await conn.execute(CANCEL_RUN, tenant, run, error)
        # after the commit: a rolled-back cleanup counts nothing
        metrics.record_completed_steps(tuple(r) for r in steps)
        metrics.record_closed_waits(waits)
        if _changed(status):
            metrics.RUNS_COMPLETED.labels("CANCELED").inc()
        return Done(changed=_changed(status))
