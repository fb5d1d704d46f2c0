"""Hostile expressions inside a real workflow: the run FAILs visibly, the workflow task never
outlives Temporal's deadlock detector and the worker keeps serving other runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from stepwise_worker.testing import outcome, run_definition, run_row, running_worker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

COMPUTE_BOMBS = [
    "$count($map([1..3000], function($i) {[1..3000]}))",
    "($f := function($n){$n > 0 ? $f($n-1) + $f($n-1) : 1}; $f(40))",
    '$string($reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}))',
]


@pytest.fixture(scope="module")
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    async with running_worker(temporal_client, pool) as w:
        # the first workflow on a worker pays the sandbox's imports: not what is measured here
        warmup = str(uuid.uuid4())
        _, handle = await run_definition(pool, temporal_client, warmup, _assign("1 + 1"))
        assert await outcome(handle) == "completed"
        yield w


def _assign(source: str) -> dict[str, Any]:
    return {
        "name": "bomb",
        "steps": [
            {
                "id": "bomb",
                "type": "transform.assign",
                "config": {"assign": {"vars.x": {"$expr": source}}},
            }
        ],
    }


@pytest.mark.parametrize("source", COMPUTE_BOMBS)
async def test_a_compute_bomb_fails_the_run_inside_one_short_workflow_task(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str, source: str
) -> None:
    started = time.perf_counter()
    run_id, handle = await run_definition(pool, temporal_client, tenant_id, _assign(source))
    assert await outcome(handle) == "failed"
    elapsed = time.perf_counter() - started
    row = await run_row(pool, run_id)
    assert row["error_json"]["category"] == "ExpressionError"
    assert "budget" in row["error_json"]["message"]
    events = [e async for e in handle.fetch_history_events()]
    failed = [
        e.workflow_task_failed_event_attributes.failure.message
        for e in events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]
    assert failed == []
    print(f"\n{elapsed * 1000:.0f} ms {source[:40]}")


async def test_honest_work_of_a_new_run_fits_its_price_list(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # 6,000 lambda calls: over the first price list's budget, inside the calibrated one that
    # every new run gets (histories recorded before keep the first one: test_replay_histories)
    source = "$count($map([1..6000], function($i){ $i * 2 }))"
    run_id, handle = await run_definition(pool, temporal_client, tenant_id, _assign(source))
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
