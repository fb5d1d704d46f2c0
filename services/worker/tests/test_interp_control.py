"""control.if, control.tryCatch (nearest handler wins) and control.return on the real dev server."""

from __future__ import annotations

import uuid

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import assign, echo, expr, fail
from .runs import (
    run_steps,
    step_rows,
)


async def test_action_call_then_return(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        echo("a", expr("payload.x"), "vars.out"),
        {"id": "r", "type": "control.return"},
        {"id": "never", "type": "state.set", "config": {"state": "unreachable"}},
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps, {"x": 41})
    assert closed == "completed"
    assert row["status"] == "SUCCEEDED"
    assert (
        row["node_path"] is None and row["completed_at"] is not None and row["error_json"] is None
    )
    assert row["result_json"]["vars"] == {"out": {"value": 41}}
    assert row["result_json"]["meta"]["state"] is None
    rows = await step_rows(pool, run_id)
    assert [(r["step_path"], r["step_type"], r["status"]) for r in rows] == [
        ("root.steps[0]", "action.call", "SUCCEEDED"),
        ("root.steps[1]", "control.return", "SUCCEEDED"),
    ]
    assert all(r["duration_ms"] is not None and r["completed_at"] is not None for r in rows)
    invocations = await pool.fetch(
        "SELECT * FROM workflow_action_invocations WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert [
        (i["action_id"], i["status"], i["attempt"], i["input_json"], i["output_json"])
        for i in invocations
    ] == [("core.echo", "SUCCEEDED", 1, {"value": 41}, {"value": 41})]
    assert invocations[0]["idempotency_key"].startswith(
        f"{tenant_id}:{run_id}:root.steps[0]:core.echo:1:"
    )


async def test_if_else_and_nested_if(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "outer",
            "type": "control.if",
            "condition": expr("payload.n > 5"),
            "then": [
                {
                    "id": "inner",
                    "type": "control.if",
                    "condition": expr("payload.n > 50"),
                    "then": [assign("big", **{"vars.size": expr("'big'")})],
                    "else": [assign("medium", **{"vars.size": expr("'medium'")})],
                },
            ],
            "else": [assign("small", **{"vars.size": expr("'small'")})],
        },
        {
            "id": "literal",
            "type": "control.if",
            "condition": True,
            "then": [{"id": "s", "type": "state.set", "config": {"state": "done"}}],
        },
    ]
    for n, size, path in [
        (3, "small", "root.steps[0].else.steps[0]"),
        (10, "medium", "root.steps[0].then.steps[0].else.steps[0]"),
        (99, "big", "root.steps[0].then.steps[0].then.steps[0]"),
    ]:
        run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps, {"n": n})
        assert closed == "completed", row["error_json"]
        assert row["result_json"]["vars"]["size"] == size
        assert row["result_json"]["meta"]["state"] == "done"
        paths = [r["step_path"] for r in await step_rows(pool, run_id)]
        assert path in paths
        assert "root.steps[1].then.steps[0]" in paths


async def test_try_catch_capture_error_as(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "tc",
            "type": "control.tryCatch",
            "captureErrorAs": "caught",
            "try": [
                assign("before", **{"vars.before": True}),
                fail("f", "nope"),
                assign("skipped", **{"vars.skipped": True}),
            ],
            "catch": [
                assign(
                    "handler",
                    **{
                        "vars.handled": expr("error.message & ' @ ' & error.nodePath"),
                        "vars.cat": expr("caught.category"),
                    },
                )
            ],
        },
        assign("after", **{"vars.after": True}),
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    got = row["result_json"]["vars"]
    assert got["before"] is True and "skipped" not in got and got["after"] is True
    assert got["handled"] == "nope @ root.steps[0].try.steps[1]"
    assert got["cat"] == "ActionError"
    assert set(got["caught"]) >= {"category", "message", "nodePath", "at"}
    statuses = [(r["step_path"], r["status"]) for r in await step_rows(pool, run_id)]
    assert ("root.steps[0].try.steps[1]", "FAILED") in statuses
    assert ("root.steps[0]", "SUCCEEDED") in statuses
    assert ("root.steps[0].catch.steps[0]", "SUCCEEDED") in statuses

    # an error inside catch goes to the enclosing handler (here: none → the run fails)
    steps = [
        {
            "id": "tc",
            "type": "control.tryCatch",
            "try": [fail("f1", "first")],
            "catch": [fail("f2", "second")],
        }
    ]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["message"], row["error_json"]["nodePath"]) == (
        "second",
        "root.steps[0].catch.steps[0]",
    )


async def test_nearest_handler_wins(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # a forEach "continue" inside a try handles the error itself: the catch never runs
    inner_loop = [
        {
            "id": "tc",
            "type": "control.tryCatch",
            "try": [
                {
                    "id": "loop",
                    "type": "control.forEach",
                    "items": expr("[1, 2]"),
                    "onItemError": "continue",
                    "body": [fail("f"), assign("n", **{"vars.n": expr("coalesce(vars.n, 0) + 1")})],
                }
            ],
            "catch": [assign("caught", **{"vars.caught": True})],
        }
    ]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, inner_loop)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"] == {"n": 2}

    # a tryCatch inside a forEach "continue" is nearer: it catches, the sequence after it runs
    inner_try = [
        {
            "id": "loop",
            "type": "control.forEach",
            "items": expr("[1, 2]"),
            "onItemError": "continue",
            "body": [
                {
                    "id": "tc",
                    "type": "control.tryCatch",
                    "try": [fail("f"), assign("x", **{"vars.skipped": True})],
                    "catch": [assign("c", **{"vars.caught": expr("coalesce(vars.caught, 0) + 1")})],
                }
            ],
        }
    ]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, inner_try)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"] == {"caught": 2}
