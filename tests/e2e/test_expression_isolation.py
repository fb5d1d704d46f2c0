"""One tenant's hostile expressions never stall another tenant's runs or events.

The four services run as processes (`stack`); tenant A is the stack's tenant, tenant B is created
here with its own admin key. Figures are printed (`-s`) and quoted in docs/expressions.md.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import asyncpg
import pytest
from stepwise_cli.admin import create_tenant
from stepwise_cli.bench.drive import EventPublisher, StackApi, eventually
from stepwise_cli.stack import Stack

pytestmark = pytest.mark.e2e

# Each fails its run with an ExpressionError: refused up front, or stopped by the counted budget.
HOSTILE = [
    "$sum([1..9999999])",
    "$count($distinct([1..200000]))",
    '$length($pad("", 50000000, "x"))',
    "$count($map([1..3000], function($i) {[1..3000]}))",
    "($f := function($n){$n > 0 ? $f($n-1) + $f($n-1) : 1}; $f(40))",
    '$string($reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}))',
    '$reduce([1..500], function($acc, $v){ {"a": $acc} }, {})',
    '$count($split($pad("", 200000, "x"), ""))',
]
# Linear on RE2: once a worker-freezing regex; now simply false.
REGEX_BOMB = '$contains("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa!", /^(a+)+$/)'


def _one_step(name: str, expr: str) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "compute",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$expr": expr}},
                    "saveAs": "vars.out",
                },
            }
        ],
    }


@pytest.fixture
async def tenant_b(stack: Stack, stack_db: asyncpg.Pool) -> AsyncIterator[tuple[str, StackApi]]:
    tenant, key = await create_tenant(stack_db, f"isolation-b-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield str(tenant), StackApi(session)


async def _latency(api: StackApi, workflow_id: str, n: int) -> float:
    async def one(i: int) -> float:
        started = time.perf_counter()
        run_id = await api.launch(workflow_id, {"i": i})
        run = await api.wait_run(run_id, timeout_s=60)
        assert run["status"] == "SUCCEEDED", run["error_json"]
        return time.perf_counter() - started

    return statistics.median(await asyncio.gather(*(one(i) for i in range(n))))


async def test_hostile_runs_fail_fast_and_other_tenants_keep_their_latency(
    stack_api: StackApi, tenant_b: tuple[str, StackApi]
) -> None:
    _, api_b = tenant_b
    benign = await api_b.publish_definition(
        _one_step(f"benign-{uuid.uuid4().hex[:6]}", "payload.i * 2")
    )
    await _latency(api_b, benign, 3)  # warm the caches
    idle_p50 = await _latency(api_b, benign, 5)

    hostile_ids = [
        await stack_api.publish_definition(_one_step(f"hostile-{i}-{uuid.uuid4().hex[:6]}", expr))
        for i, expr in enumerate(HOSTILE)
    ]
    regex_id = await stack_api.publish_definition(
        _one_step(f"regex-{uuid.uuid4().hex[:6]}", REGEX_BOMB)
    )
    launched_at = time.perf_counter()
    hostile_runs = await asyncio.gather(
        *(stack_api.launch(hostile_ids[i % len(hostile_ids)], {}) for i in range(20))
    )
    regex_run = await stack_api.launch(regex_id, {})
    loaded_p50 = await _latency(api_b, benign, 5)

    finished_after: list[float] = []
    for run_id in hostile_runs:
        run = await stack_api.wait_run(run_id, timeout_s=60)
        finished_after.append(time.perf_counter() - launched_at)
        assert run["status"] == "FAILED", run
        error = run["error_json"]
        assert error["category"] == "ExpressionError", error
        assert "expression" in error["message"], error
    regex = await stack_api.wait_run(regex_run, timeout_s=60)
    assert regex["status"] == "SUCCEEDED", regex["error_json"]
    assert (await stack_api.steps(regex_run))["invocations"][0]["output_json"] == {"value": False}

    print(
        f"\nexpression isolation: B idle p50 {idle_p50 * 1000:.0f} ms, with 20 hostile runs of A"
        f" {loaded_p50 * 1000:.0f} ms (x{loaded_p50 / idle_p50:.2f}); all hostile runs FAILED"
        f" within {max(finished_after):.1f} s"
    )
    # Goal: 2x idle. The hostile runs' CPU (~0.1 s each at most) still queues ahead of B's on one
    # worker until per-tenant fairness lands; the bound here absorbs a loaded 2-core CI machine.
    assert loaded_p50 <= 2 * idle_p50 + 10
    assert max(finished_after) < 45


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
