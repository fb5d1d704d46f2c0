"""Postgres side of `human.task`: the `workflow_tasks` row and its `human` wait, together.

Local activities with workflow-allocated ids, idempotent as the wait store's (`wait_store.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker import wait_messages as names
from stepwise_worker.activities.command_tag import rows_changed
from stepwise_worker.activities.wait_store import INSERT_WAIT, RESOLVE_WAIT
from stepwise_worker.wait_messages import CreateHumanTask, Done, ResolveHumanTask, WaitOpened

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


class HumanTaskStore:
    """The local activities of human tasks."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.create_human_task,
            self.resolve_human_task,
        ]

    @activity.defn(name=names.CREATE_HUMAN_TASK)
    async def create_human_task(self, req: CreateHumanTask) -> WaitOpened:
        """The `workflow_tasks` row and its `human` wait (keyed by the task id), together."""
        tenant, run = uuid.UUID(req.tenant_id), uuid.UUID(req.run_id)
        wait_payload = {
            "taskId": req.task_id,
            "taskType": req.task_type,
            "formSchema": req.form_schema,
            "contextData": req.context_data,
        }
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                INSERT_TASK,
                uuid.UUID(req.task_id), tenant, run, req.step_path, req.task_type, req.title,
                req.description, req.context_data, req.form_schema,
            )  # fmt: skip
            opened = await conn.execute(
                INSERT_WAIT,
                uuid.UUID(req.wait_id), tenant, run, req.step_path, "human", req.task_id,
                req.event_name, None, wait_payload,
            )  # fmt: skip
        if rows_changed(opened):
            metrics.WAITS_OPENED.labels("human").inc()
        return WaitOpened(wait_id=req.wait_id)

    @activity.defn(name=names.RESOLVE_HUMAN_TASK)
    async def resolve_human_task(self, req: ResolveHumanTask) -> Done:
        tenant = uuid.UUID(req.tenant_id)
        wait_status = "RESOLVED" if req.status == "COMPLETED" else "CANCELED"
        patch: dict[str, Any] = {"taskId": req.task_id}
        if req.status == "COMPLETED":
            patch |= {"eventName": req.event_name, "response": req.response}
        async with self._pool.acquire() as conn, conn.transaction():
            task = await conn.execute(
                RESOLVE_TASK,
                tenant, uuid.UUID(req.task_id), req.status,
                req.response if req.status == "COMPLETED" else None,
            )  # fmt: skip
            closed = await conn.fetch(
                RESOLVE_WAIT, tenant, uuid.UUID(req.wait_id), wait_status, patch
            )
        metrics.record_closed_waits(closed)
        return Done(changed=rows_changed(task))
