"""Every definition in examples/ published with the CLI and run to the end state examples/README.md
promises, on the live stack (`stack`, tests/e2e/conftest.py), with the commands that README shows:
`schemas put`, `definitions push`, `runs start --wait`, `events publish`, `tasks list|show|complete`.
"""

from __future__ import annotations

import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from stepwise_devkit.cli_process import cli, cli_json
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import StackApi, eventually

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
async def published(stack: Stack) -> dict[str, str]:
    """Schema put and every example pushed, in file order, as the README's loop does."""
    schema = EXAMPLES / "schemas" / "payload.ExampleOrder.v1.json"
    await cli_json(stack, "schemas", "put", "payload.ExampleOrder.v1", f"@{schema}")
    keys: dict[str, str] = {}
    for path in sorted(EXAMPLES.glob("*.json")):
        pushed = await cli_json(stack, "definitions", "push", str(path))
        assert pushed["validation"]["status"] == "valid", (path.name, pushed)
        assert pushed["version"] == 1, (path.name, pushed)
        keys[json.loads(path.read_text())["key"]] = pushed["workflowId"]
    return keys


async def start(stack: Stack, key: str, payload: dict[str, Any], *flags: str) -> dict[str, Any]:
    result: dict[str, Any] = await cli_json(
        stack, "runs", "start", key, "--payload", json.dumps(payload), *flags
    )
    return result


def state(run: dict[str, Any]) -> str | None:
    result = run.get("result_json") or {}
    return (result.get("meta") or {}).get("state")


def result_vars(run: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = (run.get("result_json") or {}).get("vars") or {}
    return out


async def test_order_flow_paid_and_underpaid(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    runs = {}
    for amount in (30, 10):
        order = f"o-{uuid.uuid4().hex[:8]}"
        payload = {"orderId": order, "customer": "ada", "total": 30}
        runs[amount] = (await start(stack, "example-order-flow", payload))["runId"]
        await stack_api.wait_waiting(runs[amount])
        answer = await cli_json(
            stack, "events", "publish", "ORDER_PAID", "--key", order,
            "--payload", json.dumps({"amount": amount}), "--wait", "10",
        )  # fmt: skip
        assert answer["status"] == "resumed" and answer["runId"] == runs[amount]
    paid = await stack_api.wait_run(runs[30], timeout_s=60)
    underpaid = await stack_api.wait_run(runs[10], timeout_s=60)
    assert (paid["status"], state(paid)) == ("SUCCEEDED", "paid")
    assert (underpaid["status"], state(underpaid)) == ("SUCCEEDED", "underpaid")
    assert result_vars(paid)["paid"] == 30

    # the payload schema is enforced at launch: the issues are printed, nothing starts
    refused = await cli(stack, "runs", "start", "example-order-flow", "--payload", '{"total": -1}')
    assert refused.returncode == 1 and refused.stderr.startswith("stepwise: 400 ")
    assert "orderId" in refused.stderr


async def test_order_flow_expires_when_no_payment_arrives(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    """The timeout branch, with the example's hour shortened to two seconds."""
    document = json.loads((EXAMPLES / "order-flow.json").read_text())
    definition = copy.deepcopy(document["definition"])
    definition["steps"][2]["try"][0]["config"]["timeoutMs"] = 2000
    workflow_id = await stack_api.publish_definition(definition)
    run_id = await stack_api.launch(
        workflow_id, {"orderId": f"o-{uuid.uuid4().hex[:8]}", "customer": "ada", "total": 5}
    )
    run = await stack_api.wait_run(run_id, timeout_s=60)
    assert (run["status"], state(run)) == ("SUCCEEDED", "expired")
    assert result_vars(run)["paymentError"]["code"] == "EVENT_WAIT_TIMEOUT"


async def test_expense_approval_through_the_task_commands(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    payload = {"employee": "ada", "amount": 120, "currency": "EUR", "reason": "train"}
    run_id = (await start(stack, "example-expense-approval", payload))["runId"]

    async def pending_task() -> dict[str, Any] | None:
        page = await cli_json(stack, "tasks", "list", "--run", run_id, "--status", "PENDING")
        return page["tasks"][0] if page["tasks"] else None

    task = await eventually(pending_task, "the approval task", 30)
    assert task["title"] == "Approve 120 EUR for ada" and task["task_type"] == "expense-approval"
    shown = await cli_json(stack, "tasks", "show", task["task_id"])
    assert shown["context_data"] == {"employee": "ada", "amount": 120}
    human = await cli(stack, "tasks", "show", task["task_id"])
    assert human.returncode == 0 and "Approve 120 EUR for ada" in human.stdout

    wrong = await cli(stack, "tasks", "complete", task["task_id"], "--payload", '{"approved": 1}')
    assert wrong.returncode == 1 and wrong.stderr.startswith("stepwise: 400 PAYLOAD_INVALID")
    done = await cli_json(
        stack, "tasks", "complete", task["task_id"], "--payload", '{"approved": true}'
    )
    assert done["runId"] == run_id
    run = await stack_api.wait_run(run_id, timeout_s=60)
    assert (run["status"], state(run)) == ("SUCCEEDED", "approved")
    again = await cli(stack, "tasks", "complete", task["task_id"], "--payload", "{}")
    assert again.returncode == 1 and again.stderr.startswith("stepwise: 409 ")


async def test_invoice_calls_its_child_by_key(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    run = await start(stack, "example-invoice", {"amount": 100}, "--wait", "--timeout", "60")
    assert (run["status"], state(run)) == ("SUCCEEDED", "invoiced")
    assert result_vars(run)["tax"] == 20 and result_vars(run)["total"] == 120
    steps = (await stack_api.steps(run["run_id"]))["steps"]
    assert [s["definition_step_id"] for s in steps] == ["tax", "total", "invoiced"]
    children = await cli_json(stack, "runs", "list", "--workflow", "example-tax-calculation")
    rows = [await stack_api.run(r["run_id"]) for r in children["runs"]]
    [child] = [r for r in rows if r["parent_run_id"] == run["run_id"]]
    assert child["status"] == "SUCCEEDED" and child["root_run_id"] == run["run_id"]


async def test_batch_lines_continue_past_a_bad_line(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    batch = f"b-{uuid.uuid4().hex[:8]}"
    lines = [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 0}, {"sku": "C", "qty": 1},
             {"sku": "D", "qty": 4}]  # fmt: skip
    run = await start(
        stack,
        "example-batch-lines",
        {"batchId": batch, "lines": lines},
        "--wait",
        "--timeout",
        "60",
    )
    assert run["status"] == "SUCCEEDED"
    assert result_vars(run)["reservedLines"] == 3
    reserved = {i["key"]: i["value"] for i in result_vars(run)["reserved"]["items"]}
    assert reserved == {f"{batch}:A": 2, f"{batch}:C": 1, f"{batch}:D": 4}
    steps = (await stack_api.steps(run["run_id"]))["steps"]
    failed = [s for s in steps if s["status"] == "FAILED"]
    assert len(failed) == 1 and failed[0]["definition_step_id"] == "reserve"
    assert failed[0]["error_json"]["category"] == "ExpressionError"
    assert "quantity of B must be positive" in failed[0]["error_json"]["message"]


async def test_ticket_triage_is_started_by_its_event(
    stack: Stack, stack_api: StackApi, published: dict[str, str]
) -> None:
    ticket = f"t-{uuid.uuid4().hex[:8]}"
    answer = await cli_json(
        stack, "events", "publish", "ticket.created",
        "--payload", json.dumps({"id": ticket, "priority": "high", "reporter": "ada@example.com"}),
        "--wait", "10",
    )  # fmt: skip
    [run_id] = answer["startedRuns"]
    run = await stack_api.wait_run(run_id, timeout_s=60)
    assert (run["status"], state(run)) == ("SUCCEEDED", "escalated")
    assert run["input_json"] == {
        "ticketId": ticket,
        "priority": "high",
        "reporter": {"email": "ada@example.com"},
    }

    # the escalation event it published was recorded like any other
    async def escalation() -> dict[str, Any] | None:
        page = await stack_api.call("GET", "/api/workflow/events?limit=100")
        found = [
            e for e in page["events"]
            if e["event_name"] == "ticket.escalated" and e.get("correlation_key") == ticket
        ]  # fmt: skip
        return found[0] if found else None

    await eventually(escalation, "the ticket.escalated event", 30)

    quiet = f"t-{uuid.uuid4().hex[:8]}"
    answer = await cli_json(
        stack, "events", "publish", "ticket.created", "--payload", json.dumps({"id": quiet}),
        "--wait", "10",
    )  # fmt: skip
    run = await stack_api.wait_run(answer["startedRuns"][0], timeout_s=60)
    assert (run["status"], state(run)) == ("SUCCEEDED", "queued")
    assert run["input_json"]["priority"] == "normal"


async def test_visit_counter_counts_within_its_ttl(stack: Stack, published: dict[str, str]) -> None:
    visitor = f"v-{uuid.uuid4().hex[:8]}"
    states = []
    for _ in range(3):
        run = await start(
            stack, "example-visit-counter", {"visitor": visitor}, "--wait", "--timeout", "60"
        )
        assert run["status"] == "SUCCEEDED"
        states.append(state(run))
    assert states == ["new", "new", "frequent"]
    counter = result_vars(run)["counter"]
    assert counter["found"] is True and counter["value"] == 3
    expires = datetime.fromisoformat(counter["expiresAt"].replace("Z", "+00:00"))
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)
