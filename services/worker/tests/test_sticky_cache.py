"""The sticky cache setting: a run evicted between activations (here: no cache at all, as when more
runs wait than `STEPWISE_WORKER_MAX_CACHED_WORKFLOWS`) is rebuilt by replaying its history and
resumes exactly as a cached one would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from stepwise_contract.payloads import RunResult
from stepwise_worker.actions.builtin import builtin_actions
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.settings import Settings
from stepwise_worker.worker import WorkerOptions, build_worker
from temporalio.client import Client
from temporalio.worker import Worker

from .runs import run_definition
from .signalling import open_wait, send_event, wait_for_row


@pytest.fixture(scope="module")
async def uncached_worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    w = build_worker(
        temporal_client,
        pool,
        registry=ActionRegistry(builtin_actions()),
        options=WorkerOptions(max_cached_workflows=0),
    )
    assert w.config()["max_cached_workflows"] == 0
    async with w:
        yield w


def test_the_cache_size_is_a_setting() -> None:
    env = {"DATABASE_URL": "postgresql://x/y", "STEPWISE_WORKER_MAX_CACHED_WORKFLOWS": "25000"}
    assert Settings.from_env(env).max_cached_workflows == 25_000
    assert Settings.from_env({"DATABASE_URL": "postgresql://x/y"}).max_cached_workflows == 10_000


async def test_an_evicted_run_replays_and_resumes_on_each_event(
    uncached_worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "a", "type": "transform.assign", "config": {"assign": {"vars.n": 1}}},
        {"id": "w1", "type": "event.wait", "config": {"eventName": "FIRST", "correlationKey": "k"}},
        {"id": "b", "type": "transform.assign",
         "config": {"assign": {"vars.n": {"$expr": "vars.n + vars.event.add"}}}},
        {"id": "w2", "type": "event.wait", "config": {"eventName": "SECOND", "correlationKey": "k"}},
    ]  # fmt: skip
    run_id, started = await run_definition(
        pool, temporal_client, tenant_id, {"name": "uncached", "steps": steps}
    )
    handle = temporal_client.get_workflow_handle(started.id, result_type=RunResult)
    await open_wait(pool, run_id, "event")
    await send_event(handle, "FIRST", {"add": 41}, key="k")
    # resumed past FIRST (a replay from the start, with no cache) and parked on SECOND
    await wait_for_row(
        pool,
        "SELECT 1 FROM workflow_run_waits WHERE run_id = $1 AND event_name = 'SECOND'"
        " AND status = 'WAITING'",
        uuid.UUID(run_id),
    )
    await send_event(handle, "SECOND", {"done": True}, key="k")
    result = await handle.result()
    assert result.vars["n"] == 42 and result.vars["event"] == {"done": True}
    statuses = await pool.fetch(
        "SELECT status FROM workflow_run_steps WHERE run_id = $1 ORDER BY started_at",
        uuid.UUID(run_id),
    )
    assert [r["status"] for r in statuses] == ["SUCCEEDED"] * 4
