"""End-to-end flows through the public interfaces only (HTTP API and NATS JetStream), with the four
services running as separate processes (`stack`, tests/e2e/conftest.py).

The database is read only to check what no API exposes (a data-store row deleted by the sweeper).
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import pytest
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi, eventually

pytestmark = pytest.mark.e2e


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _echo(step_id: str, expr: str, save_as: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {
            "actionId": "core.echo",
            "version": 1,
            "inputMapping": {"value": {"$expr": expr}},
            "saveAs": save_as,
        },
    }


async def test_launch_runs_to_success_with_step_rows(stack_api: StackApi) -> None:
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-launch"),
            "steps": [
                _echo("echo", "payload.n", "vars.echoed"),
                {
                    "id": "double",
                    "type": "transform.assign",
                    "config": {"assign": {"vars.double": {"$expr": "vars.echoed.value * 2"}}},
                },
                {"id": "done", "type": "state.set", "config": {"state": "done"}},
            ],
        }
    )
    run_id = await stack_api.launch(workflow_id, {"n": 21})
    run = await stack_api.wait_run(run_id)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["engine"] == "temporal" and run["temporal_run_id"]
    assert run["warnings"] == []
    steps = await stack_api.steps(run_id)
    assert [(s["definition_step_id"], s["status"]) for s in steps["steps"]] == [
        ("echo", "SUCCEEDED"),
        ("double", "SUCCEEDED"),
        ("done", "SUCCEEDED"),
    ]
    [invocation] = steps["invocations"]
    assert invocation["action_id"] == "core.echo" and invocation["status"] == "SUCCEEDED"
    assert invocation["output_json"] == {"value": 21}
    summary = await stack_api.call("GET", f"/api/workflow-runs/{run_id}/summary")
    assert summary["status"] == "SUCCEEDED" and summary["stepsCount"] == 3


async def test_event_published_on_nats_resumes_the_waiting_run(
    stack_api: StackApi, nats_events: EventPublisher
) -> None:
    event_name = f"E2E_ORDER_PAID_{uuid.uuid4().hex[:6].upper()}"
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-wait"),
            "steps": [
                {
                    "id": "paid",
                    "type": "event.wait",
                    "config": {
                        "eventName": event_name,
                        "correlationKey": {"$expr": "payload.orderId"},
                        "timeoutMs": 120_000,
                    },
                },
                _echo("amount", "vars.event.amount", "vars.amount"),
            ],
        }
    )
    order = uuid.uuid4().hex
    run_id = await stack_api.launch(workflow_id, {"orderId": order})
    wait = await stack_api.wait_waiting(run_id)
    assert wait["wait_type"] == "event" and wait["key"] == order

    # another order's event does not resume it
    other = await nats_events.publish(event_name, {"amount": 1}, key=uuid.uuid4().hex)
    await eventually(lambda: _routed(stack_api, other), f"event {other} to be routed")
    assert (await stack_api.run(run_id))["status"] == "RUNNING"

    # the same event id twice: routed once
    event_id = str(uuid.uuid4())
    for _ in range(2):
        await nats_events.publish(event_name, {"amount": 42}, key=order, event_id=event_id)
    run = await stack_api.wait_run(run_id)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    steps = await stack_api.steps(run_id)
    assert [w["status"] for w in steps["waits"]] == ["RESOLVED"]
    [invocation] = steps["invocations"]
    assert invocation["output_json"] == {"value": 42}
    event = await eventually(lambda: _routed(stack_api, event_id), f"event {event_id} routed")
    assert event["status"] == "matched" and event["matched_run_id"] == run_id
    listed = await stack_api.call("GET", f"/api/workflow/events?eventName={event_name}")
    assert sorted(e["event_id"] for e in listed["events"]) == sorted([other, event_id])


async def _routed(api: StackApi, event_id: str) -> dict[str, Any] | None:
    event = await api.event(event_id)
    return event if event is not None and event["status"] != "pending" else None


async def test_event_on_nats_starts_the_triggered_workflow(
    stack_api: StackApi, nats_events: EventPublisher
) -> None:
    event_name = f"E2E_TICKET_CREATED_{uuid.uuid4().hex[:6].upper()}"
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-trigger"),
            "trigger": {
                "type": "event",
                "eventName": event_name,
                "payloadMapping": {"ticketId": {"$expr": "event.payload.ticket.id"}},
            },
            "steps": [_echo("echo", "payload.ticketId", "vars.ticket")],
        }
    )
    event_id = await nats_events.publish(event_name, {"ticket": {"id": "T-1"}})
    event = await eventually(lambda: _routed(stack_api, event_id), f"event {event_id} routed")
    [run_id] = event["started_run_ids"]
    run = await stack_api.wait_run(run_id)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["workflow_id"] == workflow_id and run["trigger_type"] == "event"
    assert run["input_json"] == {"ticketId": "T-1"}
    # publishing the same event id again starts nothing new
    await nats_events.publish(event_name, {"ticket": {"id": "T-1"}}, event_id=event_id)
    await asyncio.sleep(1.0)
    assert await stack_api.runs_by_status(workflow_id) == {"SUCCEEDED": 1}


async def test_replay_starts_a_new_run_with_the_original_input(stack_api: StackApi) -> None:
    workflow_id = await stack_api.publish_definition(
        {"name": _name("e2e-replay"), "steps": [_echo("echo", "payload.token", "vars.t")]}
    )
    source = await stack_api.launch(workflow_id, {"token": "s3cr3t"})
    assert (await stack_api.wait_run(source))["status"] == "SUCCEEDED"
    replay = await stack_api.call(
        "POST", f"/api/workflow-runs/{source}/replay", {"reason": "e2e replay"}
    )
    assert replay["ok"] is True and replay["runId"] != source
    run = await stack_api.wait_run(replay["runId"])
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["trigger_metadata_json"]["replayOfRunId"] == source
    assert run["input_json"] == {"token": "[REDACTED]"}  # redacted in reads, original in use
    [invocation] = (await stack_api.steps(replay["runId"]))["invocations"]
    assert invocation["output_json"] == {"value": "s3cr3t"}


async def test_cancel_a_waiting_run(stack_api: StackApi) -> None:
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-cancel"),
            "steps": [
                {
                    "id": "sleep",
                    "type": "time.wait",
                    "config": {"mode": "duration", "durationMs": 600_000},
                },
                _echo("never", "payload", "vars.x"),
            ],
        }
    )
    run_id = await stack_api.launch(workflow_id)
    await stack_api.wait_waiting(run_id)
    status, problem = await stack_api.request(
        "POST", f"/api/workflow-runs/{run_id}/cancel", {"reason": "x"}
    )
    assert status == 400, problem  # reason too short
    await stack_api.call("POST", f"/api/workflow-runs/{run_id}/cancel", {"reason": "e2e cancel"})
    run = await stack_api.wait_run(run_id)
    assert run["status"] == "CANCELED", run["error_json"]
    await asyncio.sleep(1.0)  # the worker's own cancellation projection may land after the API's
    steps = await stack_api.steps(run_id)
    assert {w["status"] for w in steps["waits"]} == {"CANCELED"}
    assert {s["status"] for s in steps["steps"]} == {"CANCELED"}
    assert steps["invocations"] == []
    status, problem = await stack_api.request(
        "POST", f"/api/workflow-runs/{run_id}/cancel", {"reason": "again please"}
    )
    assert status == 409, problem


async def test_child_workflow_runs_as_its_own_run(stack_api: StackApi) -> None:
    child_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-child"),
            "steps": [
                {
                    "id": "triple",
                    "type": "transform.assign",
                    "config": {"assign": {"vars.tripled": {"$expr": "payload.n * 3"}}},
                }
            ],
        }
    )
    parent_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-parent"),
            "steps": [
                {
                    "id": "call",
                    "type": "control.callWorkflow",
                    "workflowId": child_id,
                    "workflowVersion": 1,
                    "inputMapping": {"n": {"$expr": "payload.n"}},
                    "outputMapping": {"vars.fromChild": {"$expr": "childRun.vars.tripled"}},
                },
                _echo("echo", "vars.fromChild", "vars.echoed"),
            ],
        }
    )
    parent = await stack_api.launch(parent_id, {"n": 5})
    run = await stack_api.wait_run(parent)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    [invocation] = (await stack_api.steps(parent))["invocations"]
    assert invocation["output_json"] == {"value": 15}
    children = (await stack_api.call("GET", f"/api/workflow-runs?workflowId={child_id}"))["runs"]
    assert len(children) == 1
    child = await stack_api.run(children[0]["run_id"])
    assert child["status"] == "SUCCEEDED"
    assert child["parent_run_id"] == parent and child["root_run_id"] == parent
    assert child["input_json"] == {"n": 5}


async def test_human_task_completed_over_http_resumes_the_run(stack_api: StackApi) -> None:
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-approval"),
            "steps": [
                {
                    "id": "approve",
                    "type": "human.task",
                    "config": {
                        "taskType": "approval",
                        "title": {"$expr": "'Approve ' & payload.item"},
                        "formSchema": {
                            "type": "object",
                            "required": ["approved"],
                            "properties": {"approved": {"type": "boolean"}},
                        },
                    },
                },
                _echo("echo", "vars.event.approved", "vars.approved"),
            ],
        }
    )
    run_id = await stack_api.launch(workflow_id, {"item": "laptop"})

    async def pending() -> dict[str, Any] | None:
        tasks = (await stack_api.call("GET", f"/api/workflow/tasks?runId={run_id}"))["tasks"]
        return tasks[0] if tasks and tasks[0]["status"] == "PENDING" else None

    task = await eventually(pending, f"a pending task of run {run_id}")
    assert task["title"] == "Approve laptop"
    url = f"/api/workflow/tasks/{task['task_id']}/complete"
    status, problem = await stack_api.request("POST", url, {"payload": {"approved": "yes"}})
    assert status == 400, problem
    await stack_api.call("POST", url, {"payload": {"approved": True}})
    run = await stack_api.wait_run(run_id)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    [invocation] = (await stack_api.steps(run_id))["invocations"]
    assert invocation["output_json"] == {"value": True}
    status, problem = await stack_api.request("POST", url, {"payload": {"approved": False}})
    assert status == 409, problem


async def test_data_store_rows_expire_through_the_sweeper(
    stack_api: StackApi, stack_db: asyncpg.Pool, stack: Stack
) -> None:
    namespace = _name("e2e-ttl")
    store_step = {
        "id": "put",
        "type": "action.call",
        "config": {
            "actionId": "store.set",
            "version": 1,
            "inputMapping": {
                "namespace": namespace,
                "key": {"$expr": "payload.key"},
                "value": {"$expr": "payload.value"},
                "ttlSeconds": {"$expr": "payload.ttl"},
            },
        },
    }
    workflow_id = await stack_api.publish_definition(
        {"name": _name("e2e-ttl"), "steps": [store_step]}
    )
    short = await stack_api.launch(workflow_id, {"key": "short", "value": 1, "ttl": 1})
    long = await stack_api.launch(workflow_id, {"key": "long", "value": 2, "ttl": 3600})
    for run_id in (short, long):
        assert (await stack_api.wait_run(run_id))["status"] == "SUCCEEDED"
    tenant = uuid.UUID(stack.tenant_id)

    async def keys() -> list[str]:
        rows = await stack_db.fetch(
            "SELECT key FROM workflow_data_store WHERE tenant = $1 AND namespace = $2",
            tenant,
            namespace,
        )
        return sorted(r["key"] for r in rows)

    async def short_gone() -> bool:
        return await keys() == ["long"]

    # the sweeper runs its expiry pass every second here
    await eventually(short_gone, "the sweeper to delete the expired row", timeout_s=20)


async def test_stuck_run_warning_without_a_worker_then_completion(
    stack_api: StackApi, stack: Stack
) -> None:
    workflow_id = await stack_api.publish_definition(
        {"name": _name("e2e-stuck"), "steps": [_echo("echo", "payload.n", "vars.n")]}
    )
    await asyncio.to_thread(stack.stop_component, "worker")
    try:
        run_id = await stack_api.launch(workflow_id, {"n": 1})
        run = await stack_api.run(run_id)
        assert run["status"] == "RUNNING" and run["warnings"] == []

        async def warned() -> list[dict[str, Any]] | None:
            return (await stack_api.run(run_id))["warnings"] or None

        # the API runs with a 2 s threshold here (60 s by default)
        [warning] = await eventually(warned, "the RUN_QUEUED_NO_PROGRESS warning", timeout_s=15)
        assert warning["code"] == "RUN_QUEUED_NO_PROGRESS" and warning["message"]
    finally:
        await asyncio.to_thread(stack.start_service, "worker")
    run = await stack_api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert run["warnings"] == []
