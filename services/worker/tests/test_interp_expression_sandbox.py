"""Hostile expressions inside a real workflow: the run FAILs visibly, the workflow task never
outlives Temporal's deadlock detector and the worker keeps serving other runs."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.expression_budget import OFFLOADED_MAX_WORK
from stepwise_worker.worker import workflow_runner
from stepwise_worker.workflow.run_workflow import RunWorkflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Replayer, Worker

from .runs import outcome, run_definition, run_row, running_worker

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


async def test_heavy_honest_work_is_evaluated_outside_the_workflow_and_replays(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # 10,000 lambda calls: over the inline budget, inside the offloaded one
    source = "$count($map([1..10000], function($i){ $i * 2 }))"
    run_id, handle = await run_definition(pool, temporal_client, tenant_id, _assign(source))
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    history = await handle.fetch_history()
    markers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED]
    recorded = [
        payload.data
        for event in markers
        for details in event.marker_recorded_event_attributes.details.values()
        for payload in details.payloads
    ]
    assert any(b"evaluate_expression" in data for data in recorded), "offloaded, and recorded"
    # the replay reuses the recorded outcome: no process pool, no evaluation
    replayer = Replayer(
        workflows=[RunWorkflow], workflow_runner=workflow_runner(), data_converter=DATA_CONVERTER
    )
    await replayer.replay_workflow(history)


async def test_a_bomb_fails_with_the_offloaded_budget_in_its_message(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, _assign(COMPUTE_BOMBS[1])
    )
    assert await outcome(handle) == "failed"
    error = (await run_row(pool, run_id))["error_json"]
    assert f"{OFFLOADED_MAX_WORK:,} work units" in error["message"]
    assert "at root.steps[0]" in error["message"]
