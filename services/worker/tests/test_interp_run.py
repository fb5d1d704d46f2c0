"""A run as a whole: unknown actions and step types, a pinned definition whose hash changed, the
queries, cancellation."""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import assign, expr
from .runs import (
    outcome,
    publish_definition,
    run_definition,
    run_row,
    run_steps,
    step_rows,
)


async def test_unknown_action_and_unimplemented_steps(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [{"id": "x", "type": "action.call", "config": {"actionId": "no.such", "version": 1}}]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"].get("code")) == (
        "ValidationError",
        "UNKNOWN_ACTION",
    )


async def test_definition_hash_mismatch_fails_visibly(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    from .runs import launch_run

    workflow_id, version, _digest = await publish_definition(
        pool, tenant_id, {"name": "t", "steps": [assign("a", x=1)]}
    )
    run_id, handle = await launch_run(
        pool,
        temporal_client,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=version,
        definition_hash="0" * 64,
    )
    assert await outcome(handle) == "failed"
    row = await run_row(pool, run_id)
    assert row["status"] == "FAILED"
    assert (row["error_json"]["category"], row["error_json"]["code"]) == (
        "ValidationError",
        "DEFINITION_HASH_MISMATCH",
    )
    assert await step_rows(pool, run_id) == []


async def test_queries(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    from stepwise_contract.names import QUERY_CURRENT_STEP, QUERY_SUMMARY
    from stepwise_contract.payloads import CurrentStep, InterpreterSummary

    steps = [
        {
            "id": "hold",
            "type": "action.call",
            "config": {"actionId": "test.holdRemote", "version": 1, "inputMapping": {"ms": 1500}},
        }
    ]
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "q", "steps": steps}
    )
    import asyncio

    for _ in range(50):
        current = await handle.query(QUERY_CURRENT_STEP, result_type=CurrentStep)
        if current.step_path:
            break
        await asyncio.sleep(0.05)
    assert (current.step_path, current.step_id, current.step_type) == (
        "root.steps[0]",
        "hold",
        "action.call",
    )
    summary = await handle.query(QUERY_SUMMARY, result_type=InterpreterSummary)
    assert (summary.run_id, summary.status, summary.steps_executed) == (run_id, "RUNNING", 1)
    assert await outcome(handle) == "completed"


async def test_cancellation_is_never_caught(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    hold = {"actionId": "test.holdRemote", "version": 1, "inputMapping": {"ms": 5000}}
    steps = [
        {
            "id": "loop",
            "type": "control.forEach",
            "items": expr("[1]"),
            "onItemError": "continue",
            "body": [
                {
                    "id": "tc",
                    "type": "control.tryCatch",
                    "try": [{"id": "hold", "type": "action.call", "config": hold}],
                    "catch": [assign("caught", **{"vars.caught": True})],
                },
                assign("after", **{"vars.after": True}),
            ],
        },
    ]
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "c", "steps": steps}
    )
    target = "root.steps[0].body.steps[0].try.steps[0]"
    for _ in range(200):
        if (await run_row(pool, run_id))["node_path"] == target:
            break
        await asyncio.sleep(0.02)
    await handle.cancel()
    assert await outcome(handle) == "failed"
    row = await run_row(pool, run_id)
    assert row["status"] == "CANCELED"
    paths = {r["step_path"]: r["status"] for r in await step_rows(pool, run_id)}
    assert paths[target] == "CANCELED"
    assert not any(".catch." in p for p in paths), "tryCatch did not catch the cancellation"
    assert "root.steps[0].body.steps[1]" not in paths, "onItemError continue did not either"
