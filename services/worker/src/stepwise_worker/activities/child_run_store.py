"""Postgres side of `control.callWorkflow`: the child's run row before its workflow starts, and
the Temporal run id once it has.

Local activities with workflow-allocated ids, idempotent as the wait store's (`wait_store.py`).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import asyncpg
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.launch import NewRun, insert_run
from stepwise_contract.priority import DEFAULT_PRIORITY
from temporalio import activity
from temporalio.exceptions import ApplicationError

from stepwise_worker import wait_messages as names
from stepwise_worker.activities.command_tag import rows_changed
from stepwise_worker.wait_messages import ChildRunCreated, ChildRunStarted, CreateChildRun, Done

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


class ChildRunStore:
    """The local activities of child runs."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def activities(self) -> list[Any]:
        """Every activity of this store, for `Worker(activities=…)`."""
        return [
            self.create_child_run,
            self.record_child_started,
        ]

    @activity.defn(name=names.CREATE_CHILD_RUN)
    async def create_child_run(self, req: CreateChildRun) -> ChildRunCreated:
        """The child's run row (own id, parent and root ids, pinned version), before its start."""
        tenant = uuid.UUID(req.tenant_id)
        found = await self._pool.fetchrow(
            CHILD_VERSION,
            tenant,
            req.workflow_id,
            req.workflow_version,
            uuid.UUID(req.parent_run_id),
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
                    run_id=uuid.UUID(req.child_run_id),
                    tenant=tenant,
                    workflow_id=found["workflow_id"],
                    workflow_version=int(found["version"]),
                    input_json=req.payload if req.payload is not None else {},
                    definition_hash=found["definition_hash"],
                    trigger_metadata=metadata,
                    parent_run_id=uuid.UUID(req.parent_run_id),
                    root_run_id=uuid.UUID(req.root_run_id),
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
            uuid.UUID(req.tenant_id), uuid.UUID(req.child_run_id), req.temporal_run_id,
        )  # fmt: skip
        return Done(changed=rows_changed(status))
