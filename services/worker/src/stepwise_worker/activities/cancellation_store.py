"""Postgres side of a Temporal cancel (SPEC §5): running steps, open waits, pending tasks,
unstarted child runs and the run become `CANCELED`, in one transaction.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker import wait_messages as names
from stepwise_worker.activities.command_tag import rows_changed
from stepwise_worker.wait_messages import CancelRun, Done

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


class CancellationStore:
    """The local activity of a run's cancellation."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.cancel_run,
        ]

    @activity.defn(name=names.CANCEL_RUN)
    async def cancel_run(self, req: CancelRun) -> Done:
        """Temporal cancelled the run: running steps, open waits, pending tasks and the run."""
        tenant, run = uuid.UUID(req.tenant_id), uuid.UUID(req.run_id)
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
        if rows_changed(status):
            metrics.RUNS_COMPLETED.labels("CANCELED").inc()
        return Done(changed=rows_changed(status))
