"""control.forEach: sequential, nested, parallel within its bound, onItemError, first failure stops
new items."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import action, assign, echo, expr, fail, for_each
from .runs import (
    Probe,
    run_steps,
    step_rows,
)


async def test_for_each_sequential(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        for_each(
            "loop",
            expr("payload.items"),
            [
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
            itemVar="it",
        ),
        assign("after", **{"vars.count": expr("len(vars.seen)")}),
    ]
    run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, steps, {"items": [1, 1, 3]}
    )
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
        for_each(
            "outer",
            expr("payload.rows"),
            [
                for_each(
                    "inner",
                    expr("row"),
                    [assign("cell", **{"vars.cells": expr("append(vars.cells, cell)")})],
                    itemVar="cell",
                ),
                {
                    "id": "tail",
                    "type": "control.if",
                    "condition": expr("local.isLast"),
                    "then": [assign("marker", **{"vars.cells": expr("append(vars.cells, 'end')")})],
                },
                assign("rowdone", **{"vars.rows": expr("append(vars.rows, local.index)")}),
            ],
            itemVar="row",
        ),
        assign("final", **{"vars.done": True}),
        {"id": "ret", "type": "control.return"},
    ]
    run_id, closed, row = await run_steps(
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
    worker: Worker, probe: Probe, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    probe.max_active = 0
    steps = [
        for_each(
            "par",
            expr("payload.keys"),
            [
                action("hold", "test.hold", {"ms": 300, "key": expr("item")}, "local.r"),
                assign("collect", **{"vars.done": expr("append(vars.done, local.r.key)")}),
            ],
            concurrency=3,
        ),
    ]
    keys = [f"{tenant_id}-{i}" for i in range(9)]
    _run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps, {"keys": keys})
    assert closed == "completed", row["error_json"]
    assert probe.max_active == 3, "exactly `concurrency` items ran at once"
    assert sorted(row["result_json"]["vars"]["done"]) == sorted(keys)
    assert all(probe.calls[k] == 1 for k in keys)


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
        for_each("loop", expr("payload.items"), body, onItemError="continue"),
        assign("end", **{"vars.lastError": expr("error.message")}),
    ]
    run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, cont, {"items": [1, 2, 3]}
    )
    assert closed == "completed", row["error_json"]
    got = row["result_json"]["vars"]
    # the failing step is recorded and its own sequence goes on with the next step
    assert got["seen"] == [1, 2, 3]
    assert got["after"] == [2]
    assert got["lastError"] == "bad item"
    statuses = {(r["step_path"], r["status"]) for r in await step_rows(pool, run_id)}
    assert ("root.steps[0].body.steps[0].then.steps[0]", "FAILED") in statuses
    assert row["status"] == "SUCCEEDED" and row["error_json"] is None

    stop = [for_each("loop", expr("payload.items"), body, onItemError="fail")]
    run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, stop, {"items": [1, 2, 3]}
    )
    assert closed == "failed"
    assert row["error_json"]["category"] == "ActionError"
    assert row["error_json"]["nodePath"] == "root.steps[0].body.steps[0].then.steps[0]"
    assert row["result_json"] is None
    rows = await step_rows(pool, run_id)
    failed = [r["step_path"] for r in rows if r["status"] == "FAILED"]
    # the failed step, its `control.if` and the loop, in whatever order their rows were written
    assert sorted(failed) == [
        "root.steps[0]",
        "root.steps[0].body.steps[0]",
        "root.steps[0].body.steps[0].then.steps[0]",
    ]
    # item 3 never started
    assert [r["step_path"] for r in rows].count("root.steps[0].body.steps[1]") == 1


def _failing_items(when: str, message: str, collect: str, **loop: Any) -> list[dict[str, Any]]:
    """A parallel forEach over `payload.items` whose body fails an item for which `when` holds
    (with the expression `message`), then appends the item to `vars.<collect>`; `loop` adds the
    loop's fields (`concurrency`, `onItemError`). The two parallel tests differ only in these."""
    body = [
        {
            "id": "maybe",
            "type": "control.if",
            "condition": expr(when),
            "then": [fail("f", expr(message))],
        },
        assign("c", **{f"vars.{collect}": expr(f"append(vars.{collect}, item)")}),
    ]
    return [for_each("par", expr("payload.items"), body, **loop)]


async def test_parallel_items_stop_on_first_failure(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = _failing_items("item = 'bad'", "'failed ' & item", "ok", concurrency=2)
    _run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, steps, {"items": ["a", "bad", "c", "d", "e"]}
    )
    assert closed == "failed"
    assert row["error_json"]["message"] == "failed bad"
    assert "e" not in row["result_json"]["vars"]["ok"] if row["result_json"] else True


async def test_parallel_items_continue_on_item_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = _failing_items(
        "item % 2 = 0", "'even ' & $string(item)", "done", concurrency=3, onItemError="continue"
    )
    run_id, closed, row = await run_steps(
        pool, temporal_client, tenant_id, steps, {"items": [1, 2, 3, 4, 5]}
    )
    assert closed == "completed", row["error_json"]
    assert sorted(row["result_json"]["vars"]["done"]) == [1, 2, 3, 4, 5]
    failed = [r for r in await step_rows(pool, run_id) if r["status"] == "FAILED"]
    assert sorted(r["error_json"]["message"] for r in failed) == ["even 2", "even 4"]
