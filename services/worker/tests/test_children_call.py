"""control.callWorkflow on the real dev server: child runs as Temporal child workflows (SPEC §3)."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import workflow_id_for
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from .builders import call_workflow, expr
from .runs import publish_definition, start_steps
from .signalling import wait_for_row


async def publish(pool: asyncpg.Pool, tenant: str, steps: list[Any]) -> str:
    workflow_id, _version, _hash = await publish_definition(
        pool, tenant, {"name": "child", "steps": steps}
    )
    return workflow_id


async def children_of(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM workflow_runs WHERE parent_run_id = $1 ORDER BY started_at",
            uuid.UUID(run_id),
        )
    )


async def test_call_workflow_success_three_levels(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    grandchild = await publish(pool, tenant_id, [
        {"id": "g", "type": "transform.assign", "config": {"assign": {"vars.plusOne": expr("payload.n + 1")}}},
    ])  # fmt: skip
    child = await publish(pool, tenant_id, [
        {"id": "d", "type": "transform.assign", "config": {"assign": {"vars.doubled": expr("payload.n * 2")}}},
        call_workflow("gc", grandchild, inputMapping={"n": expr("vars.doubled")},
             outputMapping={"vars.fromGrandchild": expr("childRun.vars.plusOne")}),
        {"id": "s", "type": "state.set", "config": {"state": "child-done"}},
    ])  # fmt: skip
    steps = [
        call_workflow("c", child, workflowVersion=1, inputMapping={"n": expr("payload.n")},
             outputMapping={"vars.res": expr("childRun.vars.doubled"),
                            "vars.deep": expr("childRun.vars.fromGrandchild"),
                            "vars.childState": expr("childRun.meta.state"),
                            "vars.childPayload": expr("childRun.payload")}),
    ]  # fmt: skip
    run_id, handle = await start_steps(
        pool, temporal_client, tenant_id, steps, {"n": 20}, priority=1
    )
    result = await handle.result()
    assert (result.vars["res"], result.vars["deep"], result.vars["childState"]) == (
        40,
        41,
        "child-done",
    )
    assert result.vars["childPayload"] == {"n": 20}

    [child_row] = await children_of(pool, run_id)
    child_id = str(child_row["run_id"])
    assert child_row["status"] == "SUCCEEDED" and str(child_row["root_run_id"]) == run_id
    assert str(child_row["workflow_id"]) == child and child_row["workflow_version"] == 1
    assert child_row["temporal_workflow_id"] == workflow_id_for(child_id)
    assert child_row["temporal_run_id"] is not None
    assert child_row["trigger_metadata_json"]["parentStepPath"] == "root.steps[0]"
    assert child_row["input_json"] == {"n": 20}
    [grandchild_row] = await children_of(pool, child_id)
    assert str(grandchild_row["root_run_id"]) == run_id and grandchild_row["status"] == "SUCCEEDED"
    assert grandchild_row["input_json"] == {"n": 40}
    described = await temporal_client.get_workflow_handle(workflow_id_for(child_id)).describe()
    assert described.parent_id == workflow_id_for(run_id)
    # a child run is its tenant's, at its parent's priority: in Temporal and in its row
    for row in (child_row, grandchild_row):
        assert row["priority"] == 1
        info = await temporal_client.get_workflow_handle(row["temporal_workflow_id"]).describe()
        inherited = info.raw_description.workflow_execution_info.priority
        assert (inherited.priority_key, inherited.fairness_key) == (1, tenant_id)


async def test_child_failure_into_catch(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    child = await publish(pool, tenant_id, [
        {"id": "f", "type": "action.call", "config": {"actionId": "core.fail", "version": 1,
                                                      "inputMapping": {"message": "nope", "code": "NOPE"}}},
    ])  # fmt: skip
    steps = [
        {"id": "tc", "type": "control.tryCatch", "captureErrorAs": "failure",
         "try": [call_workflow("c", child)],
         "catch": [{"id": "k", "type": "transform.assign",
                    "config": {"assign": {"vars.caught": expr("error.category")}}}]},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    result = await handle.result()
    assert result.vars["caught"] == "ChildWorkflowError"
    failure = result.vars["failure"]
    assert failure["nodePath"] == "root.steps[0].try.steps[0]"
    [child_row] = await children_of(pool, run_id)
    assert failure["details"]["childRunId"] == str(child_row["run_id"])
    assert failure["details"]["cause"]["category"] == "ActionError"
    assert failure["details"]["cause"]["code"] == "NOPE"
    assert child_row["status"] == "FAILED"


async def test_child_retry_starts_a_new_child_run_per_attempt(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # fails on its first run, succeeds on the second (a counter in the data store)
    child = await publish(pool, tenant_id, [
        {"id": "inc", "type": "action.call", "config": {"actionId": "store.increment", "version": 1,
            "inputMapping": {"namespace": "retry", "key": "k"}, "saveAs": "vars.counter"}},
        {"id": "if", "type": "control.if", "condition": expr("vars.counter.value < 2"),
         "then": [{"id": "f", "type": "action.call", "config": {"actionId": "core.fail", "version": 1,
                                                                "inputMapping": {"message": "first"}}}]},
    ])  # fmt: skip
    steps = [call_workflow("c", child, retry={"maxAttempts": 3, "backoffMs": 10, "jitter": False},
                  outputMapping={"vars.count": expr("childRun.vars.counter.value")})]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    result = await handle.result()
    assert result.vars["count"] == 2
    first, second = await children_of(pool, run_id)
    assert (first["status"], second["status"]) == ("FAILED", "SUCCEEDED")
    assert first["run_id"] != second["run_id"]
    assert second["trigger_metadata_json"]["retryOfRunId"] == str(first["run_id"])
    assert "retryOfRunId" not in first["trigger_metadata_json"]
    attempts = await pool.fetch(
        "SELECT attempt, status FROM workflow_run_steps WHERE run_id = $1 ORDER BY attempt",
        uuid.UUID(run_id),
    )
    assert [(a["attempt"], a["status"]) for a in attempts] == [(1, "FAILED"), (2, "SUCCEEDED")]


async def test_unknown_child_workflow_is_a_validation_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    run_id, handle = await start_steps(
        pool, temporal_client, tenant_id, [call_workflow("c", str(uuid.uuid4()))]
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    run = await pool.fetchrow(
        "SELECT error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None
    assert (run["error_json"]["category"], run["error_json"]["code"]) == (
        "ValidationError",
        "UNKNOWN_CHILD_WORKFLOW",
    )


async def test_cancelling_the_parent_cancels_the_child(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    child = await publish(pool, tenant_id, [
        {"id": "w", "type": "event.wait", "config": {"eventName": "NEVER"}},
    ])  # fmt: skip
    steps = [
        {"id": "tc", "type": "control.tryCatch", "try": [call_workflow("c", child)],
         "catch": [{"id": "k", "type": "transform.assign", "config": {"assign": {"vars.caught": True}}}]},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    child_row = await wait_for_row(
        pool, "SELECT run_id FROM workflow_runs WHERE parent_run_id = $1", uuid.UUID(run_id)
    )
    child_id = child_row["run_id"]
    await wait_for_row(
        pool, "SELECT 1 FROM workflow_run_waits WHERE run_id = $1 AND status = 'WAITING'", child_id
    )
    await handle.cancel()
    with pytest.raises(WorkflowFailureError) as raised:
        await handle.result()
    assert isinstance(raised.value.cause, CancelledError)
    for rid in (uuid.UUID(run_id), child_id):
        run = await pool.fetchrow("SELECT status FROM workflow_runs WHERE run_id = $1", rid)
        assert run is not None and run["status"] == "CANCELED", rid
    child_wait = await pool.fetchrow(
        "SELECT status FROM workflow_run_waits WHERE run_id = $1", child_id
    )
    assert child_wait is not None and child_wait["status"] == "CANCELED"
    steps_rows = await pool.fetch(
        "SELECT step_path, status FROM workflow_run_steps WHERE run_id = $1 ORDER BY started_at",
        uuid.UUID(run_id),
    )
    assert [(s["step_path"], s["status"]) for s in steps_rows] == [
        ("root.steps[0]", "CANCELED"), ("root.steps[0].try.steps[0]", "CANCELED"),
    ]  # fmt: skip
    child_desc = await temporal_client.get_workflow_handle(
        workflow_id_for(str(child_id))
    ).describe()
    assert child_desc.status is not None and child_desc.status.name == "CANCELED"
