"""Noisy neighbours on the shared task queue: tenants with their own API keys, a backlog built
while the worker is stopped, and when each run finished — for the fairness tests and the
`noisy_neighbour` benchmark figure.

The figure's baseline is the same measurement in the same stack with every run started without
a fairness key (rows written and workflows started exactly as the services do, minus the key):
the task queue is then first come, first served, and B waits behind A's whole backlog.

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
from datetime import datetime

import aiohttp
import asyncpg
from stepwise_cli.admin_operations import create_tenant, set_fairness_weight
from stepwise_contract.platform.launch import (
    NewRun,
    insert_run,
    record_started,
    run_input_for,
    start_run,
)
from temporalio.client import Client
from temporalio.common import Priority
from temporalio.service import RPCError

from stepwise_devkit.bench.figures import note
from stepwise_devkit.bench.isolation import one_step_definition
from stepwise_devkit.bench.run_phases import RunPhases, TimedRuns, describe, paced, run_phases
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import StackApi


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
        definition = one_step_definition(name, "payload.i")
        if priority is not None:
            definition["priority"] = priority
        workflow_id = await api.publish_definition(definition)
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


async def discard_unfinished(stack: Stack, pool: asyncpg.Pool, run_ids: list[str]) -> int:
    """Ends what is left of a backlog without executing it: with the worker stopped, each
    unfinished row is marked CANCELED and its workflow terminated. For tests that need a large
    backlog's effect but not its drain (minutes of CPU on a small machine). Returns how many."""
    async with worker_stopped(stack):
        rows = await pool.fetch(
            "UPDATE workflow_runs SET status = 'CANCELED', completed_at = now()"
            " WHERE run_id = ANY($1::uuid[]) AND status IN ('PENDING', 'RUNNING')"
            " RETURNING temporal_workflow_id",
            list(run_ids),
        )
        client = await Client.connect(stack.temporal_address)
        gate = asyncio.Semaphore(32)

        async def terminate(workflow_id: str) -> None:
            async with gate:
                with contextlib.suppress(RPCError):  # it finished meanwhile
                    await client.get_workflow_handle(workflow_id).terminate(
                        "test backlog discarded"
                    )

        started = [r["temporal_workflow_id"] for r in rows if r["temporal_workflow_id"]]
        await asyncio.gather(*(terminate(workflow_id) for workflow_id in started))
    return len(rows)


async def all_succeeded(pool: asyncpg.Pool, run_ids: list[str], timeout_s: float) -> None:
    async def done() -> bool:
        return await succeeded(pool, run_ids) == len(run_ids)

    await wait_until(done, f"{len(run_ids)} runs to succeed", timeout_s, interval_s=0.5)


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# --- the `noisy_neighbour` benchmark figure ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoisyNeighbour:
    idle_p50_s: float  # B alone
    fair_p50_s: float  # B beside A's backlog, runs started by the services (fairness keys)
    unfair_p50_s: float  # the same, every run started without a fairness key (baseline)


async def _latest_version(pool: asyncpg.Pool, workflow_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT tenant, workflow_id, version, definition_hash FROM workflow_definition_versions"
        " WHERE workflow_id = $1 ORDER BY version DESC LIMIT 1",
        uuid.UUID(workflow_id),
    )
    assert row is not None
    return row


async def start_without_fairness(
    pool: asyncpg.Pool, client: Client, version: asyncpg.Record, i: int
) -> str:
    """A run started as the services start one, but with no fairness key (nor priority)."""
    run_id = uuid.uuid4()
    new = NewRun(
        run_id=run_id,
        tenant=version["tenant"],
        workflow_id=version["workflow_id"],
        workflow_version=version["version"],
        input_json={"i": i},
        definition_hash=version["definition_hash"],
    )
    await insert_run(pool, new)
    row = {"run_id": run_id, "tenant": new.tenant, "workflow_id": new.workflow_id,
           "workflow_version": new.workflow_version, "trigger_type": None,
           "trigger_fire_key": None, "idempotency_key": None, "parent_run_id": None,
           "root_run_id": run_id}  # fmt: skip
    await record_started(pool, run_id, await start_run(client, run_input_for(row), Priority()))
    return str(run_id)


async def _paced(
    pool: asyncpg.Pool,
    client: Client,
    launch: Callable[[int], Awaitable[str]],
    count: int,
    rate: float,
) -> TimedRuns:
    """Launch `count` runs at `rate`/s; seconds from each launch call to its row SUCCEEDED (the
    row's own `completed_at`, on this machine's clock, so the poll interval does not round it),
    and each run's phases from its history."""

    async def one(i: int) -> tuple[float, RunPhases]:
        sent = time.time()
        run_id = await launch(i)
        launch_s = time.time() - sent
        completed: datetime | None = None

        async def done() -> bool:
            nonlocal completed
            completed = await pool.fetchval(
                "SELECT completed_at FROM workflow_runs WHERE run_id = $1 AND status = 'SUCCEEDED'",
                uuid.UUID(run_id),
            )
            return completed is not None

        await wait_until(done, f"run {run_id}", 1800, 0.05)
        assert completed is not None
        return completed.timestamp() - sent, await run_phases(client, run_id, launch_s)

    return await paced(one, count, rate)


async def noisy_neighbour(
    stack: Stack, pool: asyncpg.Pool, client: Client, flood: int, paced: int, rate: float
) -> NoisyNeighbour:
    """B's p50 launch → SUCCEEDED for `paced` one-step runs at `rate`/s: alone, beside A's
    `flood` queued runs with fairness keys, and beside the same flood without them."""
    async with (
        tenant_api(stack, pool, "noisy-a") as a,
        tenant_api(stack, pool, "quiet-b") as b,
    ):
        a_version = await _latest_version(pool, a.workflow_id)
        b_version = await _latest_version(pool, b.workflow_id)

        async def b_by_api(i: int) -> str:
            return await b.api.launch(b.workflow_id, {"i": i})

        async def b_direct(i: int) -> str:
            return await start_without_fairness(pool, client, b_version, i)

        idle = await _paced(pool, client, b_by_api, paced, rate)
        note(f"noisy_neighbour: B alone p50 {p50(idle.latencies):.2f} s ({describe(idle.phases)})")

        async with worker_stopped(stack):
            backlog = await launch_many(a, flood)
        fair = await _paced(pool, client, b_by_api, paced, rate)
        note(
            f"noisy_neighbour: beside {flood} queued, fairness keys: p50"
            f" {p50(fair.latencies):.2f} s ({describe(fair.phases)})"
        )
        await all_succeeded(pool, backlog, timeout_s=60 + flood)

        gate = asyncio.Semaphore(16)

        async def a_direct(i: int) -> str:
            async with gate:
                return await start_without_fairness(pool, client, a_version, i)

        async with worker_stopped(stack):
            backlog = list(await asyncio.gather(*(a_direct(i) for i in range(flood))))
        unfair = await _paced(pool, client, b_direct, paced, rate)
        note(
            f"noisy_neighbour: beside {flood} queued, no fairness keys: p50"
            f" {p50(unfair.latencies):.2f} s ({describe(unfair.phases)})"
        )
        await all_succeeded(pool, backlog, timeout_s=60 + flood)
    return NoisyNeighbour(
        idle_p50_s=p50(idle.latencies),
        fair_p50_s=p50(fair.latencies),
        unfair_p50_s=p50(unfair.latencies),
    )
