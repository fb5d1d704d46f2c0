"""Noisy neighbours on the shared task queue: tenants with their own API keys, a backlog built
while the worker is stopped, and when each run finished — for the fairness tests and the
`noisy_neighbour` benchmark figure.

A backlog is built with the worker stopped so that it is exactly the runs launched, all queued in
Temporal before any is dispatched (with the worker running, how much queues would depend on how
fast this machine launches versus drains).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from stepwise_cli.admin import create_tenant, set_fairness_weight
from stepwise_cli.bench.drive import StackApi
from stepwise_cli.stack import Stack


def one_step_definition(name: str, priority: int | None = None) -> dict[str, Any]:
    definition: dict[str, Any] = {
        "name": name,
        "steps": [
            {
                "id": "echo",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$expr": "payload.i"}},
                    "saveAs": "vars.out",
                },
            }
        ],
    }
    if priority is not None:
        definition["priority"] = priority
    return definition


@dataclass(frozen=True, slots=True)
class TenantApi:
    tenant: uuid.UUID
    api: StackApi
    workflow_id: str  # its published one-step workflow


@contextlib.asynccontextmanager
async def tenant_api(
    stack: Stack,
    pool: asyncpg.Pool,
    name: str,
    *,
    weight: float = 1.0,
    priority: int | None = None,
) -> AsyncIterator[TenantApi]:
    """A fresh tenant (fairness `weight`) with an admin session and a published one-step
    workflow (definition `priority`)."""
    tenant, key = await create_tenant(pool, f"{name}-{uuid.uuid4().hex[:6]}")
    await set_fairness_weight(pool, tenant, weight)
    async with aiohttp.ClientSession(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {key}"},
        timeout=aiohttp.ClientTimeout(total=60),
        connector=aiohttp.TCPConnector(limit=0),
    ) as session:
        api = StackApi(session)
        workflow_id = await api.publish_definition(one_step_definition(name, priority))
        yield TenantApi(tenant=tenant, api=api, workflow_id=workflow_id)


async def launch_many(
    who: TenantApi, count: int, *, concurrency: int = 16, priority: int | None = None
) -> list[str]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> str:
        async with gate:
            return await who.api.launch(who.workflow_id, {"i": i}, priority=priority)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


@contextlib.asynccontextmanager
async def worker_stopped(stack: Stack) -> AsyncIterator[None]:
    """The worker is down inside the block and running again after it, whatever happens."""
    await asyncio.to_thread(stack.stop_component, "worker")
    try:
        yield
    finally:
        await asyncio.to_thread(stack.start_service, "worker")


async def succeeded(pool: asyncpg.Pool, run_ids: Iterable[str]) -> int:
    found: int = await pool.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE run_id = ANY($1::uuid[])"
        " AND status = 'SUCCEEDED'",
        list(run_ids),
    )
    return found


async def wait_until(
    probe: Callable[[], Awaitable[bool]], what: str, timeout_s: float, interval_s: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def all_succeeded(pool: asyncpg.Pool, run_ids: list[str], timeout_s: float) -> None:
    async def done() -> bool:
        return await succeeded(pool, run_ids) == len(run_ids)

    await wait_until(done, f"{len(run_ids)} runs to succeed", timeout_s, interval_s=0.5)


async def paced_latencies(
    who: TenantApi, count: int, rate: float, timeout_s: float = 600.0
) -> list[float]:
    """Launch `count` runs at `rate`/s; each one's seconds from launch to SUCCEEDED (polled)."""

    async def one(i: int) -> float:
        started = time.perf_counter()
        run_id = await who.api.launch(who.workflow_id, {"i": i})
        run = await who.api.wait_run(run_id, timeout_s=timeout_s)
        assert run["status"] == "SUCCEEDED", run.get("error_json")
        return time.perf_counter() - started

    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(1.0 / rate)
    return list(await asyncio.gather(*tasks))


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")
