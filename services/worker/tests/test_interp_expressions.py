"""Expressions and assignments in a run: helpers, disallowed functions, size guards, undefined
results, assign paths and scopes, authored order."""

from __future__ import annotations

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import assign, echo, expr
from .runs import (
    run_steps,
    step_rows,
)


async def test_double_equals_and_helpers(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        assign(
            "a",
            **{
                "vars.same": expr("payload.kind == 'x'"),
                "vars.n": expr("len(payload.items)"),
                "vars.s": expr("toString(5)"),
                "vars.c": expr("coalesce(payload.missing, 'fallback')"),
                "vars.when": expr("nowIso()"),
                "vars.twice": expr("vars.n * 2"),
            },
        ),
        {
            "id": "if",
            "type": "control.if",
            "condition": expr("vars.same == true and $not($exists(local.index))"),
            "then": [{"id": "st", "type": "state.set", "config": {"state": "matched"}}],
        },
    ]
    _run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, steps, {"kind": "x", "items": [1, 2, 3]}
    )
    assert closed == "completed", row["error_json"]
    got = row["result_json"]["vars"]
    assert (got["same"], got["n"], got["s"], got["c"], got["twice"]) == (
        True,
        3,
        "5",
        "fallback",
        6,
    )
    assert got["when"].endswith("Z") and got["when"][:4].isdigit()
    assert row["result_json"]["meta"]["state"] == "matched"


async def test_disallowed_function_fails_the_run(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [assign("ok", **{"vars.a": 1}), assign("clock", **{"vars.t": expr("$now()")})]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert row["status"] == "FAILED"
    error = row["error_json"]
    assert error["category"] == "ExpressionError"
    assert error["nodePath"] == "root.steps[1]"
    assert "$now" in error["message"] and "root.steps[1]" in error["message"]
    assert set(error) >= {"category", "message", "nodePath", "at"}
    statuses = [(r["step_path"], r["status"]) for r in await step_rows(pool, run_id)]
    assert statuses == [("root.steps[0]", "SUCCEEDED"), ("root.steps[1]", "FAILED")]


async def test_expression_output_size_guard(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [assign("huge", **{"vars.big": expr("$pad('', 300000, 'x')")})]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert row["error_json"]["category"] == "ExpressionError"
    assert "would build a string" in row["error_json"]["message"]


async def test_undefined_results_and_bad_types(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    cases = [
        ([assign("u", **{"vars.x": expr("payload.nothing")})], "undefined"),
        ([{"id": "if", "type": "control.if", "condition": expr("'yes'"), "then": []}], "boolean"),
        (
            [
                {
                    "id": "fe",
                    "type": "control.forEach",
                    "items": expr("payload.n"),
                    "body": [assign("b", x=1)],
                }
            ],
            "array",
        ),
        ([echo("e", expr("payload.nothing"))], "undefined"),
        ([assign("p", **{"vars.__proto__.x": 1})], "unsafe"),
    ]
    for steps, fragment in cases:
        _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps, {"n": 3})
        assert closed == "failed"
        assert fragment in row["error_json"]["message"], row["error_json"]
        assert row["error_json"]["nodePath"] == "root.steps[0]"


async def test_assign_paths_and_scopes(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        assign(
            "a",
            **{
                "payload.order.total": expr("payload.price * 2"),
                "vars.a.b": 1,
                "/payload/pointer": "p",
                "meta.owner": "ops",
                "local.outside": expr("system.workflowVersion"),
            },
        ),
        # jsonb (definition_json) keeps object keys sorted by length, not as written
        assign("a2", plain=expr("vars.a.b + 1")),
        assign(
            "b", **{"vars.seen": expr("[plain, meta.runId = system.runId, meta.owner, outside]")}
        ),
    ]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps, {"price": 21})
    assert closed == "completed", row["error_json"]
    result = row["result_json"]
    assert result["payload"] == {"price": 21, "order": {"total": 42}, "pointer": "p"}
    assert result["vars"]["a"] == {"b": 1}
    assert result["vars"]["seen"] == [2, True, "ops", 1]
    assert result["meta"]["owner"] == "ops"


async def test_assign_entries_run_in_authored_order(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # jsonb would re-order these keys (shortest first); definitions are stored as json (0004)
    steps = [
        assign(
            "order",
            **{
                "vars.longest_name_first": 1,
                "mid_key": expr("longest_name_first + 1"),
                "z": expr("mid_key + 1"),
            },
        )
    ]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"] == {"longest_name_first": 1, "mid_key": 2, "z": 3}
