"""Step and run projections: one row per step attempt (containers included), node_path while
running, durations, logs, idempotent re-execution of the local activities, terminal guard."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from stepwise_contract.platform.launch import NewRun, insert_run
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.activities.projections import Projections
from stepwise_worker.messages import RunDone, StepBatch, StepDone, StepStart
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from .runs import (
    outcome,
    publish_definition,
    run_definition,
    run_row,
    step_rows,
)


async def test_every_step_has_rows_and_node_path_follows(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "first", "type": "state.set", "config": {"state": "a"}},
        {
            "id": "branch",
            "type": "control.if",
            "condition": True,
            "then": [
                {
                    "id": "hold",
                    "type": "action.call",
                    "config": {
                        "actionId": "test.holdRemote",
                        "version": 1,
                        "inputMapping": {"ms": 800},
                    },
                },
            ],
        },
        {"id": "last", "type": "state.set", "config": {"state": "b"}},
    ]
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "p", "steps": steps}
    )
    seen = set()
    for _ in range(100):
        row = await run_row(pool, run_id)
        seen.add(row["node_path"])
        if row["node_path"] == "root.steps[1].then.steps[0]":
            running = {r["step_path"]: r["status"] for r in await step_rows(pool, run_id)}
            # the completed step's row is written before the next step runs
            assert running == {
                "root.steps[0]": "SUCCEEDED",
                "root.steps[1]": "STARTED",
                "root.steps[1].then.steps[0]": "STARTED",
            }
            break
        await asyncio.sleep(0.02)
    assert "root.steps[1].then.steps[0]" in seen
    assert await outcome(handle) == "completed"
    rows = await step_rows(pool, run_id)
    assert [
        (r["step_path"], r["definition_step_id"], r["step_type"], r["status"], r["attempt"])
        for r in rows
    ] == [
        ("root.steps[0]", "first", "state.set", "SUCCEEDED", 1),
        ("root.steps[1]", "branch", "control.if", "SUCCEEDED", 1),
        ("root.steps[1].then.steps[0]", "hold", "action.call", "SUCCEEDED", 1),
        ("root.steps[2]", "last", "state.set", "SUCCEEDED", 1),
    ]
    by_path = {r["step_path"]: r for r in rows}
    assert by_path["root.steps[1].then.steps[0]"]["duration_ms"] >= 700
    assert (
        by_path["root.steps[1]"]["duration_ms"]
        >= by_path["root.steps[1].then.steps[0]"]["duration_ms"]
    )
    assert all(r["tenant"] == uuid.UUID(tenant_id) for r in rows)
    final = await run_row(pool, run_id)
    assert (final["status"], final["node_path"]) == ("SUCCEEDED", None)
    logs = await pool.fetch(
        "SELECT level, message, source FROM workflow_run_logs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert [(r["level"], r["message"], r["source"]) for r in logs] == [
        ("INFO", "Run succeeded", "runtime")
    ]


async def test_failed_run_projection(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "boom",
            "type": "action.call",
            "config": {
                "actionId": "core.fail",
                "version": 1,
                "inputMapping": {"message": "kaput", "category": "TransientError", "code": "E42"},
            },
        }
    ]
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "f", "steps": steps}
    )
    assert await outcome(handle) == "failed"
    row = await run_row(pool, run_id)
    assert (
        row["status"] == "FAILED" and row["completed_at"] is not None and row["node_path"] is None
    )
    error = row["error_json"]
    assert (error["category"], error["message"], error["nodePath"], error["code"]) == (
        "TransientError",
        "kaput",
        "root.steps[0]",
        "E42",
    )
    assert error["at"].endswith("Z")
    [step] = await step_rows(pool, run_id)
    assert step["status"] == "FAILED" and step["error_json"] == error
    logs = await pool.fetch(
        "SELECT level, step_path, context_json FROM workflow_run_logs WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert [(r["level"], r["step_path"], r["context_json"]) for r in logs] == [
        ("ERROR", "root.steps[0]", error)
    ]


async def test_projection_activities_are_idempotent(pool: asyncpg.Pool, tenant_id: str) -> None:
    """A local activity re-executed after a worker crash writes nothing twice."""
    workflow_id, version, digest = await publish_definition(
        pool, tenant_id, {"name": "i", "steps": []}
    )
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id,
            tenant=uuid.UUID(tenant_id),
            workflow_id=uuid.UUID(workflow_id),
            workflow_version=version,
            input_json={},
            definition_hash=digest,
        ),
    )
    registry = ActionRegistry.default()
    projections = Projections(pool, catalog=registry.catalog(), max_payload_bytes=10 * 1024 * 1024)
    env = ActivityEnvironment()
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    start = StepBatch(
        tenant_id=tenant_id,
        run_id=str(run_id),
        start=StepStart(
            step_id=first, step_path="root.steps[0]", definition_step_id="a", step_type="state.set"
        ),
    )
    assert (await env.run(projections.record_steps, start)).steps_started == 1
    assert (await env.run(projections.record_steps, start)).steps_started == 0
    move = StepBatch(
        tenant_id=tenant_id,
        run_id=str(run_id),
        done=[StepDone(step_id=first, status="SUCCEEDED")],
        start=StepStart(
            step_id=second, step_path="root.steps[1]", definition_step_id="b", step_type="state.set"
        ),
    )
    assert (await env.run(projections.record_steps, move)).steps_completed == 1
    assert (await env.run(projections.record_steps, move)).steps_completed == 0
    rows = await step_rows(pool, str(run_id))
    assert [(r["step_path"], r["status"]) for r in rows] == [
        ("root.steps[0]", "SUCCEEDED"),
        ("root.steps[1]", "STARTED"),
    ]
    assert (await run_row(pool, str(run_id)))["node_path"] == "root.steps[1]"

    done = RunDone(
        tenant_id=tenant_id,
        run_id=str(run_id),
        status="SUCCEEDED",
        result={"vars": {}},
        done=[StepDone(step_id=second, status="FAILED", error={"message": "x"})],
    )
    await env.run(projections.complete_run, done)
    await env.run(projections.complete_run, done)
    row = await run_row(pool, str(run_id))
    assert (row["status"], row["node_path"], row["result_json"]) == (
        "SUCCEEDED",
        None,
        {"vars": {}},
    )

    # a terminal run is never overwritten (e.g. an operator cancelled it meanwhile)
    await env.run(
        projections.complete_run,
        RunDone(
            tenant_id=tenant_id, run_id=str(run_id), status="FAILED", error={"message": "late"}
        ),
    )
    row = await run_row(pool, str(run_id))
    assert (row["status"], row["error_json"]) == ("SUCCEEDED", None)
    # another tenant's id never touches this run
    other = RunDone(tenant_id=str(uuid.uuid4()), run_id=str(run_id), status="FAILED")
    assert (await env.run(projections.complete_run, other)).steps_completed == 0
    assert (await run_row(pool, str(run_id)))["status"] == "SUCCEEDED"
