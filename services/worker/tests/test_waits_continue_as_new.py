"""Continue-as-new (SPEC §5) on the real dev server: long loops, carried signals and state."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from stepwise_worker.workflow.checkpoint import CONTINUE_AS_NEW_EVERY
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import assign, expr
from .runs import start_steps
from .signalling import open_wait, send_event


async def chain(
    client: Client, workflow_id: str
) -> list[tuple[str, int, list[EventType.ValueType]]]:
    """Every run of the workflow id, first to last: (run id, history length, event types)."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = desc.raw_description.workflow_execution_info.first_run_id
    runs = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        types = [e.event_type for e in history.events]
        runs.append((run_id, len(types), types))
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def test_loop_of_2000_steps_continues_as_new(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        assign("init", **{"vars.sum": 0}),
        {"id": "loop", "type": "control.forEach", "items": expr("[1..1000]"), "itemVar": "n",
         "body": [assign("x", **{"local.x": expr("n * 10")}),
                  assign("acc", **{"vars.sum": expr("vars.sum + local.x")})]},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    result = await handle.result()
    # local.x set by the first body step survived every checkpoint taken between the two
    assert result.vars["sum"] == 10 * sum(range(1, 1001))
    runs = await chain(temporal_client, handle.id)
    assert len(runs) == 2002 // CONTINUE_AS_NEW_EVERY + 1
    assert max(length for _, length, _ in runs) < 2 * CONTINUE_AS_NEW_EVERY + 200
    rows = await pool.fetch(
        "SELECT step_path, status, count(*) AS n FROM workflow_run_steps WHERE run_id = $1 GROUP BY 1, 2",
        uuid.UUID(run_id),
    )  # fmt: skip
    by_path = {(r["step_path"], r["status"]): r["n"] for r in rows}
    # one row per step execution: the loop kept its row across the checkpoints
    assert by_path == {
        ("root.steps[0]", "SUCCEEDED"): 1,
        ("root.steps[1]", "SUCCEEDED"): 1,
        ("root.steps[1].body.steps[0]", "SUCCEEDED"): 1000,
        ("root.steps[1].body.steps[1]", "SUCCEEDED"): 1000,
    }
    run = await pool.fetchrow(
        "SELECT status FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None and run["status"] == "SUCCEEDED"


async def test_continue_as_new_keeps_buffered_signals_and_consumed_ids(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "first", "type": "event.wait", "config": {"eventName": "A", "correlationKey": "k"}},
        {"id": "loop", "type": "control.forEach", "items": expr(f"[1..{CONTINUE_AS_NEW_EVERY + 20}]"),
         "body": [assign("n", **{"vars.n": expr("item")})]},
        {"id": "tc", "type": "control.tryCatch",
         "try": [{"id": "again", "type": "event.wait",
                  "config": {"eventName": "A", "correlationKey": "k", "timeoutMs": 1000}}],
         "catch": [assign("dup", **{"vars.duplicate": "ignored"})]},
        {"id": "late", "type": "event.wait", "config": {"eventName": "LATE"}},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "event")
    first = await send_event(handle, "A", {"n": 1}, key="k")
    # sent while the loop runs, before the checkpoint: must travel in the checkpoint
    await send_event(handle, "LATE", {"late": True})
    desc = await handle.describe()
    first_run = desc.raw_description.workflow_execution_info.first_run_id
    for _ in range(400):
        desc = await handle.describe()
        if desc.run_id != first_run:
            break
        await asyncio.sleep(0.05)
    assert desc.run_id != first_run, "the run never continued as new"
    # the same event again, after the checkpoint: its id was consumed before, so it is ignored
    await send_event(handle, "A", {"n": 1}, key="k", event_id=first)
    result = await handle.result()
    assert result.vars["duplicate"] == "ignored"
    assert result.vars["event"] == {"late": True} and result.vars["eventName"] == "LATE"
    runs = await chain(temporal_client, handle.id)
    assert len(runs) == 2
    signalled = [t.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED) for _, _, t in runs]
    assert signalled == [2, 1]  # LATE was received by the first run and consumed by the second
    waits = await pool.fetch(
        "SELECT step_path, payload FROM workflow_run_waits WHERE run_id = $1 ORDER BY created_at",
        uuid.UUID(run_id),
    )  # fmt: skip
    assert [w["step_path"] for w in waits] == [
        "root.steps[0]",
        "root.steps[2].try.steps[0]",
        "root.steps[3]",
    ]
    assert waits[1]["payload"]["matchedEventId"] is None
