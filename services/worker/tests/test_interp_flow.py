"""The interpreter's control flow on the real dev server (ported from the reference cases)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from stepwise_worker.testing import (
    Probe,
    outcome,
    probe_actions,
    publish_definition,
    run_definition,
    run_row,
    running_worker,
    step_rows,
)
from temporalio.client import Client
from temporalio.worker import Worker

PROBE = Probe()


@pytest.fixture(scope="module")
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    async with running_worker(temporal_client, pool, extra_actions=probe_actions(PROBE)) as w:
        yield w


def echo(step_id: str, value: Any, save_as: str | None = None) -> dict[str, Any]:
    config: dict[str, Any] = {
        "actionId": "core.echo",
        "version": 1,
        "inputMapping": {"value": value},
    }
    if save_as:
        config["saveAs"] = save_as
    return {"id": step_id, "type": "action.call", "config": config}


def fail(step_id: str, message: str | dict[str, str] = "boom", **extra: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {"actionId": "core.fail", "version": 1, "inputMapping": {"message": message}},
        **extra,
    }


def assign(step_id: str, **targets: Any) -> dict[str, Any]:
    return {"id": step_id, "type": "transform.assign", "config": {"assign": targets}}


def expr(source: str) -> dict[str, str]:
    return {"$expr": source}


async def run(
    pool: asyncpg.Pool,
    client: Client,
    tenant: str,
    steps: list[dict[str, Any]],
    payload: Any = None,
) -> tuple[str, str, asyncpg.Record]:
    run_id, handle = await run_definition(
        pool, client, tenant, {"name": "t", "steps": steps}, payload
    )
    closed = await outcome(handle)
    return run_id, closed, await run_row(pool, run_id)


async def test_action_call_then_return(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        echo("a", expr("payload.x"), "vars.out"),
        {"id": "r", "type": "control.return"},
        {"id": "never", "type": "state.set", "config": {"state": "unreachable"}},
    ]
    run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"x": 41})
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
    steps: list[dict[str, Any]] = [
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
        run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"n": n})
        assert closed == "completed", row["error_json"]
        assert row["result_json"]["vars"]["size"] == size
        assert row["result_json"]["meta"]["state"] == "done"
        paths = [r["step_path"] for r in await step_rows(pool, run_id)]
        assert path in paths
        assert "root.steps[1].then.steps[0]" in paths


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
    _run_id, closed, row = await run(
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
    run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
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
        _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"n": 3})
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"price": 21})
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"] == {"longest_name_first": 1, "mid_key": 2, "z": 3}


async def test_for_each_sequential(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "loop",
            "type": "control.forEach",
            "items": expr("payload.items"),
            "itemVar": "it",
            "body": [
                echo("e", expr("it * 10"), "local.ten"),
                assign(
                    "collect",
                    **{
                        "vars.seen": expr(
                            "append(vars.seen, {'i': local.index, 'v': local.ten.value, 'first': local.isFirst, 'last': local.isLast, 'item': item})"
                        )
                    },
                ),
            ],
        },
        assign("after", **{"vars.count": expr("len(vars.seen)")}),
    ]
    run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"items": [1, 1, 3]})
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"]["seen"] == [
        {"i": 0, "v": 10, "first": True, "last": False, "item": 1},
        {"i": 1, "v": 10, "first": False, "last": False, "item": 1},
        {"i": 2, "v": 30, "first": False, "last": True, "item": 3},
    ]
    assert row["result_json"]["vars"]["count"] == 3
    # identical items do not share an invocation: the item index extends the key
    keys = await pool.fetch(
        "SELECT idempotency_key FROM workflow_action_invocations WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert len({k["idempotency_key"] for k in keys}) == 3
    assert sorted(k["idempotency_key"].rsplit(":", 1)[1] for k in keys) == [
        "item0",
        "item1",
        "item2",
    ]
    rows = await step_rows(pool, run_id)
    assert [r["step_path"] for r in rows].count("root.steps[0].body.steps[0]") == 3


async def test_nested_for_each_with_trailing_steps(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "outer",
            "type": "control.forEach",
            "items": expr("payload.rows"),
            "itemVar": "row",
            "body": [
                {
                    "id": "inner",
                    "type": "control.forEach",
                    "items": expr("row"),
                    "itemVar": "cell",
                    "body": [assign("cell", **{"vars.cells": expr("append(vars.cells, cell)")})],
                },
                {
                    "id": "tail",
                    "type": "control.if",
                    "condition": expr("local.isLast"),
                    "then": [assign("marker", **{"vars.cells": expr("append(vars.cells, 'end')")})],
                },
                assign("rowdone", **{"vars.rows": expr("append(vars.rows, local.index)")}),
            ],
        },
        assign("final", **{"vars.done": True}),
        {"id": "ret", "type": "control.return"},
    ]
    run_id, closed, row = await run(
        pool, temporal_client, tenant_id, steps, {"rows": [["a", "b"], [], ["c"]]}
    )
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"]["cells"] == ["a", "b", "c", "end"]
    assert row["result_json"]["vars"]["rows"] == [0, 1, 2]
    assert row["result_json"]["vars"]["done"] is True
    paths = [r["step_path"] for r in await step_rows(pool, run_id)]
    assert paths.count("root.steps[0].body.steps[0].body.steps[0]") == 3
    assert paths[-2:] == ["root.steps[1]", "root.steps[2]"]


async def test_for_each_parallel_respects_the_bound(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    PROBE.max_active = 0
    steps = [
        {
            "id": "par",
            "type": "control.forEach",
            "items": expr("payload.keys"),
            "concurrency": 3,
            "body": [
                {
                    "id": "hold",
                    "type": "action.call",
                    "config": {
                        "actionId": "test.hold",
                        "version": 1,
                        "inputMapping": {"ms": 300, "key": expr("item")},
                        "saveAs": "local.r",
                    },
                },
                assign("collect", **{"vars.done": expr("append(vars.done, local.r.key)")}),
            ],
        },
    ]
    keys = [f"{tenant_id}-{i}" for i in range(9)]
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps, {"keys": keys})
    assert closed == "completed", row["error_json"]
    assert PROBE.max_active == 3, "exactly `concurrency` items ran at once"
    assert sorted(row["result_json"]["vars"]["done"]) == sorted(keys)
    assert all(PROBE.calls[k] == 1 for k in keys)


async def test_for_each_on_item_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    body = [
        {
            "id": "check",
            "type": "control.if",
            "condition": expr("item = 2"),
            "then": [
                fail("boom", "bad item"),
                assign("after_fail", **{"vars.after": expr("append(vars.after, item)")}),
            ],
        },
        assign("collect", **{"vars.seen": expr("append(vars.seen, item)")}),
    ]
    cont = [
        {
            "id": "loop",
            "type": "control.forEach",
            "items": expr("payload.items"),
            "onItemError": "continue",
            "body": body,
        },
        assign("end", **{"vars.lastError": expr("error.message")}),
    ]
    run_id, closed, row = await run(pool, temporal_client, tenant_id, cont, {"items": [1, 2, 3]})
    assert closed == "completed", row["error_json"]
    got = row["result_json"]["vars"]
    # the failing step is recorded and its own sequence goes on with the next step
    assert got["seen"] == [1, 2, 3]
    assert got["after"] == [2]
    assert got["lastError"] == "bad item"
    statuses = {(r["step_path"], r["status"]) for r in await step_rows(pool, run_id)}
    assert ("root.steps[0].body.steps[0].then.steps[0]", "FAILED") in statuses
    assert row["status"] == "SUCCEEDED" and row["error_json"] is None

    stop = [
        {
            "id": "loop",
            "type": "control.forEach",
            "items": expr("payload.items"),
            "onItemError": "fail",
            "body": body,
        }
    ]
    run_id, closed, row = await run(pool, temporal_client, tenant_id, stop, {"items": [1, 2, 3]})
    assert closed == "failed"
    assert row["error_json"]["category"] == "ActionError"
    assert row["error_json"]["nodePath"] == "root.steps[0].body.steps[0].then.steps[0]"
    assert row["result_json"] is None
    rows = await step_rows(pool, run_id)
    failed = [r["step_path"] for r in rows if r["status"] == "FAILED"]
    assert failed == [
        "root.steps[0]",
        "root.steps[0].body.steps[0]",
        "root.steps[0].body.steps[0].then.steps[0]",
    ] or sorted(failed) == sorted(
        [
            "root.steps[0]",
            "root.steps[0].body.steps[0]",
            "root.steps[0].body.steps[0].then.steps[0]",
        ]
    )
    # item 3 never started
    assert [r["step_path"] for r in rows].count("root.steps[0].body.steps[1]") == 1


async def test_parallel_items_stop_on_first_failure(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "par",
            "type": "control.forEach",
            "items": expr("payload.items"),
            "concurrency": 2,
            "body": [
                {
                    "id": "maybe",
                    "type": "control.if",
                    "condition": expr("item = 'bad'"),
                    "then": [fail("f", expr("'failed ' & item"))],
                },
                assign("c", **{"vars.ok": expr("append(vars.ok, item)")}),
            ],
        }
    ]
    _run_id, closed, row = await run(
        pool, temporal_client, tenant_id, steps, {"items": ["a", "bad", "c", "d", "e"]}
    )
    assert closed == "failed"
    assert row["error_json"]["message"] == "failed bad"
    assert "e" not in row["result_json"]["vars"]["ok"] if row["result_json"] else True


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
    run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, inner_loop)
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
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, inner_try)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"] == {"caught": 2}


async def test_unknown_action_and_unimplemented_steps(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [{"id": "x", "type": "action.call", "config": {"actionId": "no.such", "version": 1}}]
    _run_id, closed, row = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"].get("code")) == (
        "ValidationError",
        "UNKNOWN_ACTION",
    )


async def test_definition_hash_mismatch_fails_visibly(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    from stepwise_worker.testing import launch_run

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


async def test_parallel_items_continue_on_item_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "par",
            "type": "control.forEach",
            "items": expr("payload.items"),
            "concurrency": 3,
            "onItemError": "continue",
            "body": [
                {
                    "id": "maybe",
                    "type": "control.if",
                    "condition": expr("item % 2 = 0"),
                    "then": [fail("f", expr("'even ' & $string(item)"))],
                },
                assign("c", **{"vars.done": expr("append(vars.done, item)")}),
            ],
        }
    ]
    run_id, closed, row = await run(
        pool, temporal_client, tenant_id, steps, {"items": [1, 2, 3, 4, 5]}
    )
    assert closed == "completed", row["error_json"]
    assert sorted(row["result_json"]["vars"]["done"]) == [1, 2, 3, 4, 5]
    failed = [r for r in await step_rows(pool, run_id) if r["status"] == "FAILED"]
    assert sorted(r["error_json"]["message"] for r in failed) == ["even 2", "even 4"]
