"""One tenant's hostile expressions never stall another tenant's runs or events.

The four services run as processes (`stack`); tenant A is the stack's tenant, tenant B is created
here with its own admin key. Figures are printed (`-s`) and quoted in docs/expressions.md.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import asyncpg
import pytest
from stepwise_cli.admin_operations import create_tenant
from stepwise_devkit.bench.isolation import expression_isolation, one_step_definition
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi, eventually

pytestmark = pytest.mark.e2e

# Linear on RE2: once a worker-freezing regex; now simply false.
REGEX_BOMB = '$contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /^(a+)+$/)'


@pytest.fixture
async def tenant_b(stack: Stack, stack_db: asyncpg.Pool) -> AsyncIterator[tuple[str, StackApi]]:
    tenant, key = await create_tenant(stack_db, f"isolation-b-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield str(tenant), StackApi(session)


async def test_hostile_runs_fail_and_other_tenants_keep_their_latency(
    stack_api: StackApi, stack: Stack, stack_db: asyncpg.Pool
) -> None:
    # raises unless every hostile run ends FAILED with an ExpressionError
    found = await expression_isolation(
        stack_api, stack_db, stack.api_url, hostile_runs=20, samples=5
    )
    loaded_ms, idle_ms = found.loaded_ms, found.idle_ms
    print(
        f"\nexpression isolation: B idle p50 {idle_ms:.0f} ms; with 20 hostile runs of A in"
        f" flight {loaded_ms:.0f} ms (x{loaded_ms / idle_ms:.2f}); with 20 benign ones"
        f" {found.benign_ms:.0f} ms (x{found.benign_ms / idle_ms:.2f}); {found.hostile_runs}"
        f" hostile runs, the slowest failed {found.slowest_failure_s:.2f} s after its start"
    )
    assert found.hostile_runs >= 20
    # Goals: 1.5x idle (make bench), 2x here, each hostile run FAILED within 2 s. The bounds
    # absorb a loaded CI machine (docs/expressions.md has the measured figures).
    assert loaded_ms <= 2 * idle_ms + 3_000
    assert found.slowest_failure_s < 10


async def test_a_catastrophic_regex_is_just_false(stack_api: StackApi) -> None:
    workflow_id = await stack_api.publish_definition(
        one_step_definition(f"regex-{uuid.uuid4().hex[:6]}", REGEX_BOMB)
    )
    run_id = await stack_api.launch(workflow_id, {})
    run = await stack_api.wait_run(run_id, timeout_s=60)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    assert (await stack_api.steps(run_id))["invocations"][0]["output_json"] == {"value": False}


async def test_a_hostile_trigger_mapping_does_not_stall_other_tenants_events(
    stack_api: StackApi, tenant_b: tuple[str, StackApi], stack: Stack
) -> None:
    tenant_b_id, api_b = tenant_b
    hostile_event = f"HOSTILE_{uuid.uuid4().hex[:6].upper()}"
    hostile_wf = await stack_api.publish_definition(
        {
            "name": f"hostile-trigger-{uuid.uuid4().hex[:6]}",
            "trigger": {
                "type": "event",
                "eventName": hostile_event,
                "payloadMapping": {
                    "x": {"$expr": "($f := function($n){$n > 0 ? $f($n-1) + $f($n-1) : 1}; $f(40))"}
                },
            },
            "steps": [
                {"id": "s", "type": "state.set", "config": {"state": "never"}},
            ],
        }
    )
    b_event = f"ORDER_{uuid.uuid4().hex[:6].upper()}"
    b_wf = await api_b.publish_definition(
        {
            "name": f"b-waiter-{uuid.uuid4().hex[:6]}",
            "steps": [
                {
                    "id": "wait",
                    "type": "event.wait",
                    "config": {
                        "eventName": b_event,
                        "correlationKey": {"$expr": "payload.orderId"},
                        "timeoutMs": 120_000,
                    },
                }
            ],
        }
    )
    b_runs = [await api_b.launch(b_wf, {"orderId": f"o-{i}"}) for i in range(5)]
    for run_id in b_runs:
        await api_b.wait_waiting(run_id)

    publisher_a = await EventPublisher.connect(stack.nats_url, stack.tenant_id)
    publisher_b = await EventPublisher.connect(stack.nats_url, tenant_b_id)
    try:
        hostile_events = [await publisher_a.publish(hostile_event, {}) for _ in range(10)]
        started = time.perf_counter()
        for i in range(len(b_runs)):
            await publisher_b.publish(b_event, {"paid": True}, key=f"o-{i}")
        for run_id in b_runs:
            run = await api_b.wait_run(run_id, timeout_s=60)
            assert run["status"] == "SUCCEEDED", run["error_json"]
        b_elapsed = time.perf_counter() - started

        async def hostile_runs_failed() -> dict[str, int] | None:
            counts = await stack_api.runs_by_status(hostile_wf)
            return counts if sum(counts.values()) == len(hostile_events) else None

        counts = await eventually(hostile_runs_failed, "hostile trigger runs recorded", 60)
    finally:
        await publisher_a.close()
        await publisher_b.close()
    assert counts == {"FAILED": len(hostile_events)}
    page = await stack_api.call("GET", f"/api/workflow-runs?workflowId={hostile_wf}&limit=1")
    assert "budget" in str(page["runs"][0]["error_json"])
    print(f"\nB's 5 events resumed their runs in {b_elapsed:.2f} s beside 10 hostile triggers")
    assert b_elapsed < 20
