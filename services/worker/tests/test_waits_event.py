"""event.wait on the real dev server (SPEC §3, §5.4): signals, keys, filters, timeout, the
recent-event buffer, at-most-once consumption."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from stepwise_contract.names import QUERY_CURRENT_WAIT
from stepwise_contract.payloads import CurrentWait
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import event_wait, expr
from .runs import start_steps
from .signalling import buffer_event, open_wait, send_event


async def rows(pool: asyncpg.Pool, sql: str, run_id: str) -> list[asyncpg.Record]:
    return list(await pool.fetch(sql, uuid.UUID(run_id)))


async def test_event_wait_resumed_by_signal(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        event_wait("w", "ORDER_PAID", correlationKey=expr("payload.orderId"),
                  assign={"vars.amount": expr("vars.event.amount")}),
        {"id": "after", "type": "transform.assign", "config": {"assign": {"vars.done": expr("vars.eventName")}}},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps, {"orderId": "o-1"})
    wait = await open_wait(pool, run_id, "event")
    assert (wait["event_name"], wait["key"], wait["step_path"]) == (
        "ORDER_PAID",
        "o-1",
        "root.steps[0]",
    )
    current = await handle.query(QUERY_CURRENT_WAIT, result_type=CurrentWait)
    assert (current.wait_type, current.event_name, current.key) == ("event", "ORDER_PAID", "o-1")
    step = await pool.fetchrow(
        "SELECT status FROM workflow_run_steps WHERE run_id = $1", uuid.UUID(run_id)
    )
    run = await pool.fetchrow(
        "SELECT status FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert step is not None and step["status"] == "STARTED"
    assert run is not None and run["status"] == "RUNNING"  # waiting on an event is not WAITING

    event_id = await send_event(handle, "ORDER_PAID", {"amount": 12.5}, key="o-1")
    result = await handle.result()
    assert result.vars["event"] == {"amount": 12.5}
    assert (result.vars["eventName"], result.vars["amount"], result.vars["done"]) == (
        "ORDER_PAID",
        12.5,
        "ORDER_PAID",
    )
    resolved = await pool.fetchrow(
        "SELECT * FROM workflow_run_waits WHERE wait_id = $1", wait["wait_id"]
    )
    assert resolved is not None and resolved["status"] == "RESOLVED"
    assert resolved["payload"]["matchedEventId"] == event_id
    statuses = await rows(pool, "SELECT status FROM workflow_run_steps WHERE run_id = $1", run_id)
    assert [r["status"] for r in statuses] == ["SUCCEEDED", "SUCCEEDED"]


async def test_wrong_key_and_failing_filter_do_not_resume(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        event_wait("w", "TICKET", correlationKey="T-1",
                  filters=[{"path": "$.status", "op": "=", "value": "open"},
                           {"path": "priority", "op": ">=", "value": 3}]),
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "event")
    await send_event(handle, "TICKET", {"status": "open", "priority": 5}, key="T-2")  # other key
    await send_event(
        handle, "TICKET", {"status": "closed", "priority": 5}, key="T-1"
    )  # filter fails
    await send_event(
        handle, "TICKET", {"status": "open", "priority": "5"}, key="T-1"
    )  # not a number
    await send_event(handle, "OTHER", {"status": "open", "priority": 5}, key="T-1")  # other name
    # Signals are handled in order: once this query answers, all four were seen and rejected.
    current = await handle.query(QUERY_CURRENT_WAIT, result_type=CurrentWait)
    assert current.wait_type == "event"
    desc = await handle.describe()
    assert desc.status is not None and desc.status.name == "RUNNING"
    matching = await send_event(handle, "TICKET", {"status": "open", "priority": 3}, key="T-1")
    result = await handle.result()
    assert result.vars["event"] == {"status": "open", "priority": 3}
    wait = await pool.fetchrow(
        "SELECT payload FROM workflow_run_waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert wait is not None and wait["payload"]["matchedEventId"] == matching


async def test_timeout_is_caught_by_try_catch(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "tc", "type": "control.tryCatch", "captureErrorAs": "failure",
         "try": [event_wait("w", "NEVER", correlationKey="k", timeoutMs=300)],
         "catch": [{"id": "c", "type": "transform.assign",
                    "config": {"assign": {"vars.caught": expr("error.category")}}}]},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    result = await handle.result()
    assert result.vars["caught"] == "TimeoutError"
    assert result.vars["failure"]["nodePath"] == "root.steps[0].try.steps[0]"
    assert result.vars["failure"]["code"] == "EVENT_WAIT_TIMEOUT"
    wait = await pool.fetchrow(
        "SELECT status, payload FROM workflow_run_waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert wait is not None and wait["status"] == "RESOLVED"
    assert wait["payload"]["matchedEventId"] is None and wait["payload"]["timedOut"] is True
    step = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_run_steps WHERE run_id = $1 AND step_path = $2",
        uuid.UUID(run_id), "root.steps[0].try.steps[0]",
    )  # fmt: skip
    assert (
        step is not None
        and step["status"] == "FAILED"
        and step["error_json"]["category"] == "TimeoutError"
    )


async def test_uncaught_timeout_fails_the_run(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    run_id, handle = await start_steps(
        pool, temporal_client, tenant_id, [event_wait("w", "NEVER", timeoutMs=100)]
    )
    with pytest.raises(Exception):  # noqa: B017 - the workflow fails; its type is Temporal's
        await handle.result()
    run = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None and run["status"] == "FAILED"
    assert run["error_json"]["category"] == "TimeoutError"


async def test_early_event_in_the_buffer_is_consumed(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        event_wait("gate", "GATE"),
        event_wait("w", "EARLY", correlationKey="K-9", timeoutMs=20_000),
    ]
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "event")
    # published while the run was busy elsewhere: buffered by the router, never signalled
    # (no wait row for EARLY existed yet); plus one for another key that must be ignored
    await buffer_event(pool, tenant_id, "EARLY", {"which": "other"}, key="K-8")
    early = await buffer_event(pool, tenant_id, "EARLY", {"which": "early"}, key="K-9")
    await send_event(handle, "GATE")
    result = await handle.result()
    assert result.vars["event"] == {"which": "early"}
    wait = await pool.fetchrow(
        "SELECT status, payload FROM workflow_run_waits WHERE run_id = $1 AND event_name = 'EARLY'",
        uuid.UUID(run_id),
    )
    assert (
        wait is not None
        and wait["status"] == "RESOLVED"
        and wait["payload"]["matchedEventId"] == early
    )


async def test_an_event_is_consumed_once(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        event_wait("first", "PING", correlationKey="p"),
        {"id": "tc", "type": "control.tryCatch",
         "try": [event_wait("second", "PING", correlationKey="p", timeoutMs=1500)],
         "catch": [{"id": "c", "type": "transform.assign",
                    "config": {"assign": {"vars.second": "timed out"}}}]},
    ]  # fmt: skip
    run_id, handle = await start_steps(pool, temporal_client, tenant_id, steps)
    await open_wait(pool, run_id, "event")
    event_id = str(uuid.uuid4())
    # the same event: signalled twice and also sitting in the recent-event buffer
    await buffer_event(pool, tenant_id, "PING", {"n": 1}, key="p", event_id=event_id)
    await send_event(handle, "PING", {"n": 1}, key="p", event_id=event_id)
    await send_event(handle, "PING", {"n": 1}, key="p", event_id=event_id)
    result = await handle.result()
    assert result.vars["event"] == {"n": 1}
    assert result.vars["second"] == "timed out"
    waits = await rows(
        pool, "SELECT payload FROM workflow_run_waits WHERE run_id = $1 ORDER BY created_at", run_id
    )
    assert [w["payload"]["matchedEventId"] for w in waits] == [event_id, None]
