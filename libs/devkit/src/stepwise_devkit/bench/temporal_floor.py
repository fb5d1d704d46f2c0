"""The Temporal floor of the latency figures: the same measurements with no Stepwise code at all.

`expression_isolation` and `noisy_neighbour` divide tenant B's latency beside another tenant's load
by B's latency alone. On a small machine part of that ratio belongs to the machine: the Temporal
server, its store and the worker share the cores with the load. The floor measures that part.
Tenant B and tenant A are two fairness keys on a task queue of the floor's own; their runs are
`BenchOneStep` (one local activity, as a one-step run is one workflow task with its action a local
activity), started directly on Temporal and executed by a hand-written worker in a process of its
own with our worker's workflow-task slots. Each latency is the start call → the run's last
workflow task completed, on the server's clock (the same machine as the caller).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import Priority

from stepwise_devkit.bench.baseline import FLOOR_TASK_QUEUE
from stepwise_devkit.bench.baseline_worker import BaselineWorker
from stepwise_devkit.bench.figures import all_closed
from stepwise_devkit.bench.run_phases import RunPhases, TimedRuns, history_phases, paced

LOAD_KEY = "floor-a"
MEASURED_KEY = "floor-b"


@dataclass(frozen=True, slots=True)
class Floor:
    idle: TimedRuns  # B alone
    loaded: TimedRuns  # B beside A's load

    @property
    def ratio(self) -> float:
        """B's p50 beside the load ÷ B's p50 alone."""
        return statistics.median(self.loaded.latencies) / statistics.median(self.idle.latencies)


@contextlib.asynccontextmanager
async def running(worker: BaselineWorker) -> AsyncIterator[None]:
    """The floor's worker polls inside the block only, so it is idle during every other figure."""
    await asyncio.to_thread(worker.start)
    try:
        yield
    finally:
        await asyncio.to_thread(worker.stop)


async def _start(client: Client, key: str, i: int) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        "BenchOneStep",
        {"i": i},
        id=f"bench-floor-{key}-{uuid.uuid4()}",
        task_queue=FLOOR_TASK_QUEUE,
        priority=Priority(fairness_key=key),
    )


async def _timed(client: Client, i: int) -> tuple[float, RunPhases]:
    sent = time.time()
    handle = await _start(client, MEASURED_KEY, i)
    phases, ended = await history_phases(handle, time.time() - sent)
    return ended - sent, phases


async def one_after_another(client: Client, n: int) -> TimedRuns:
    return TimedRuns.of([await _timed(client, i) for i in range(n)])


async def _paced(client: Client, n: int, rate: float) -> TimedRuns:
    return await paced(functools.partial(_timed, client), n, rate)


async def in_flight_floor(client: Client, in_flight: int, samples: int) -> Floor:
    """`expression_isolation`'s floor: B's runs one after another, alone and while A keeps
    `in_flight` runs in flight (each replaced as soon as it ends)."""
    await one_after_another(client, 3)  # warm caches
    idle = await one_after_another(client, samples)
    stop = asyncio.Event()

    async def keep_one() -> None:
        i = 0
        while not stop.is_set():
            await (await _start(client, LOAD_KEY, i)).result()
            i += 1

    keepers = [asyncio.create_task(keep_one()) for _ in range(in_flight)]
    try:
        await asyncio.sleep(0.5)  # A's first runs under way, as in ours
        loaded = await one_after_another(client, samples)
    finally:
        stop.set()
        await asyncio.gather(*keepers)
    return Floor(idle=idle, loaded=loaded)


async def backlog_floor(
    client: Client, worker: BaselineWorker, flood: int, count: int, rate: float
) -> Floor:
    """`noisy_neighbour`'s floor: `count` runs of B at `rate`/s, alone and beside `flood` runs of A
    queued while the worker was stopped (fairness keys on, as for ours). `worker` is running."""
    idle = await _paced(client, count, rate)
    gate = asyncio.Semaphore(16)

    async def queue_one(i: int) -> WorkflowHandle[Any, Any]:
        async with gate:
            return await _start(client, LOAD_KEY, i)

    await asyncio.to_thread(worker.stop)
    try:
        backlog = await asyncio.gather(*(queue_one(i) for i in range(flood)))
    finally:
        await asyncio.to_thread(worker.start)
    loaded = await _paced(client, count, rate)
    await all_closed(backlog, 60 + flood)
    return Floor(idle=idle, loaded=loaded)
