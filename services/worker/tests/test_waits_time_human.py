"""time.wait (duration, until, past) and human.task (resume, invalid response keeps waiting),
and cancellation while waiting, on the real dev server."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import QUERY_CURRENT_WAIT
from stepwise_contract.payloads import CurrentWait, RunResult
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from .builders import expr
from .runs import start_steps
from .signalling import complete_task, open_wait, send_event


def parse(iso: str) -> datetime:
    return datetime.fromisoformat(iso)


async def test_time_wait_duration(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [{"id": "t", "type": "time.wait", "config": {"mode": "duration", "durationMs": 1200,
                                                         "assign": {"vars.slept": True}}}]  # fmt: skip
    began = time.monotonic()
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    wait = await open_wait(pool, run_id, "time")
    current = await handle.query(QUERY_CURRENT_WAIT, result_type=CurrentWait)
    assert current.wait_type == "time" and current.wait_id == str(wait["wait_id"])
    result = await handle.result()
    assert time.monotonic() - began >= 1.2
    tw = result.vars["timeWait"]
    assert tw["mode"] == "duration" and result.vars["slept"] is True
    assert parse(tw["resumedAt"]) >= parse(tw["dueAt"])
    resolved = await pool.fetchrow(
        "SELECT status, timeout_at, payload FROM workflow_run_waits WHERE wait_id = $1",
        wait["wait_id"],
    )
    assert resolved is not None and resolved["status"] == "RESOLVED"
    assert abs((resolved["timeout_at"] - parse(tw["dueAt"])).total_seconds()) < 0.01
    assert resolved["payload"]["resumedAt"] == tw["resumedAt"]


async def test_time_wait_until_and_past(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    due = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    steps = [
        {
            "id": "past",
            "type": "time.wait",
            "config": {"mode": "until", "until": "2001-01-01T00:00:00Z"},
        },
        {
            "id": "keep",
            "type": "transform.assign",
            "config": {"assign": {"vars.past": expr("vars.timeWait")}},
        },
        {
            "id": "until",
            "type": "time.wait",
            "config": {"mode": "until", "until": expr("payload.due")},
        },
    ]
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps, {"due": due})
    result = await handle.result()
    past = result.vars["past"]
    assert past["mode"] == "until" and past["dueAt"] == "2001-01-01T00:00:00.000Z"
    assert parse(past["resumedAt"]).year >= 2026  # continued at once, at workflow time
    until = result.vars["timeWait"]
    assert parse(until["dueAt"]) == parse(due).replace(
        microsecond=parse(due).microsecond // 1000 * 1000
    )
    assert parse(until["resumedAt"]) >= parse(until["dueAt"])
    waits = await pool.fetch(
        "SELECT step_path, status FROM workflow_run_waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    # a past instant needs no wait row; the future one was resolved
    assert [(w["step_path"], w["status"]) for w in waits] == [("root.steps[2]", "RESOLVED")]


async def test_time_wait_until_garbage_is_a_validation_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [{"id": "t", "type": "time.wait", "config": {"mode": "until", "until": "not a date"}}]
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    run = await pool.fetchrow(
        "SELECT error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None and run["error_json"]["category"] == "ValidationError"


FORM = {
    "type": "object",
    "required": ["approved"],
    "properties": {"approved": {"type": "boolean"}, "note": {"type": "string"}},
}


async def test_human_task_resume_and_invalid_response(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "h", "type": "human.task", "config": {
            "taskType": "approval", "title": expr("'Approve ' & payload.ticket"),
            "description": "please look", "contextData": {"ticket": expr("payload.ticket")},
            "formSchema": FORM, "assign": {"vars.approved": expr("vars.event.approved")}}},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps, {"ticket": "T-7"})
    wait = await open_wait(pool, run_id, "human")
    task = await pool.fetchrow("SELECT * FROM workflow_tasks WHERE run_id = $1", uuid.UUID(run_id))
    assert task is not None
    task_id = str(task["task_id"])
    assert (task["status"], task["title"], task["task_type"], task["context_data"]) == (
        "PENDING", "Approve T-7", "approval", {"ticket": "T-7"},
    )  # fmt: skip
    assert task["form_schema"] == FORM and task["description"] == "please look"
    assert (wait["key"], wait["event_name"]) == (task_id, "human.task.completed")

    await complete_task(handle, str(uuid.uuid4()), {"approved": True})  # another task: ignored
    await complete_task(handle, task_id, {"approved": "yes"})  # fails the form: keeps waiting
    current = await handle.query(QUERY_CURRENT_WAIT, result_type=CurrentWait)
    assert (current.wait_type, current.key) == ("human", task_id)
    still = await pool.fetchrow(
        "SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait["wait_id"]
    )
    assert still is not None and still["status"] == "WAITING"

    await complete_task(handle, task_id, {"approved": False, "note": "no"})
    result = await handle.result()
    assert result.vars["event"] == {"approved": False, "note": "no"}
    assert result.vars["approved"] is False and result.vars["eventName"] == "human.task.completed"
    task = await pool.fetchrow(
        "SELECT status, response_json FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    assert task is not None and (task["status"], task["response_json"]) == (
        "COMPLETED",
        {"approved": False, "note": "no"},
    )
    resolved = await pool.fetchrow(
        "SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait["wait_id"]
    )
    assert resolved is not None and resolved["status"] == "RESOLVED"
    logs = await pool.fetch(
        "SELECT message FROM workflow_run_logs WHERE run_id = $1 AND level = 'WARN'",
        uuid.UUID(run_id),
    )
    assert any("rejected" in r["message"] for r in logs)


async def assert_canceled(
    pool: asyncpg.Pool, run_id: str, handle: WorkflowHandle[Any, RunResult]
) -> None:
    with pytest.raises(WorkflowFailureError) as raised:
        await handle.result()
    assert isinstance(raised.value.cause, CancelledError)
    run = await pool.fetchrow(
        "SELECT status, node_path, completed_at, error_json FROM workflow_runs WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert run is not None and run["status"] == "CANCELED" and run["completed_at"] is not None
    assert run["error_json"]["category"] == "Cancellation"
    steps = await pool.fetch(
        "SELECT status FROM workflow_run_steps WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert steps and {s["status"] for s in steps} <= {"SUCCEEDED", "CANCELED"}
    assert "CANCELED" in {s["status"] for s in steps}
    waits = await pool.fetch(
        "SELECT status FROM workflow_run_waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert waits and {w["status"] for w in waits} == {"CANCELED"}


async def test_cancel_while_waiting_is_not_swallowed_by_try_catch(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "tc", "type": "control.tryCatch",
         "try": [{"id": "w", "type": "event.wait", "config": {"eventName": "NEVER"}}],
         "catch": [{"id": "c", "type": "transform.assign", "config": {"assign": {"vars.caught": True}}}]},
        {"id": "after", "type": "transform.assign", "config": {"assign": {"vars.after": True}}},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "event")
    await handle.cancel()
    await assert_canceled(pool, run_id, handle)
    paths = await pool.fetch(
        "SELECT step_path, status FROM workflow_run_steps WHERE run_id = $1 ORDER BY started_at",
        uuid.UUID(run_id),
    )
    # neither the catch nor the next step ran; the container and the wait step are CANCELED
    assert [(p["step_path"], p["status"]) for p in paths] == [
        ("root.steps[0]", "CANCELED"), ("root.steps[0].try.steps[0]", "CANCELED"),
    ]  # fmt: skip


async def test_cancel_during_human_task_cancels_the_task(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "h", "type": "human.task", "config": {"taskType": "t", "title": "T"}},
    ]
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "human")
    await handle.cancel()
    await assert_canceled(pool, run_id, handle)
    task = await pool.fetchrow(
        "SELECT status FROM workflow_tasks WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert task is not None and task["status"] == "CANCELED"


async def test_cancel_during_time_wait(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "a", "type": "transform.assign", "config": {"assign": {"vars.a": 1}}},
        {"id": "t", "type": "time.wait", "config": {"mode": "duration", "durationMs": 600_000}},
    ]
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "time")
    await send_event(handle, "IRRELEVANT")  # buffered, not consumed: harmless
    await handle.cancel()
    await assert_canceled(pool, run_id, handle)
    first = await pool.fetchrow(
        "SELECT status FROM workflow_run_steps WHERE run_id = $1 AND step_path = 'root.steps[0]'",
        uuid.UUID(run_id),
    )
    assert first is not None and first["status"] == "SUCCEEDED"
