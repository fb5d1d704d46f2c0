"""Where a run's launch → SUCCEEDED went, read back from its Temporal history.

The latency figures (`noisy_neighbour`, `expression_isolation`) print this beside their p50s, so
a ratio that misses its goal says which part grew: the launch (HTTP: the run row and the workflow
start), the wait in the shared task queue (workflow task scheduled → started) or the workflow
task itself (started → its last completion: the steps, their local activities and the run's
completion).
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

from stepwise_contract.names import workflow_id_for
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle


@dataclass(frozen=True, slots=True)
class RunPhases:
    launch_s: float  # the launch call, as the client timed it
    queue_s: float  # the first workflow task: scheduled → started
    task_s: float  # the first workflow task started → the last one completed


@dataclass(frozen=True, slots=True)
class TimedRuns:
    """Runs timed one by one: launch call → the row's `completed_at`, and where each went."""

    latencies: list[float]  # seconds
    phases: list[RunPhases]  # in the same order; empty when the histories were not read

    @classmethod
    def of(cls, found: Sequence[tuple[float, RunPhases]]) -> TimedRuns:
        """From (latency, phases) pairs, in order."""
        return cls(latencies=[f[0] for f in found], phases=[f[1] for f in found])


async def paced(
    timed: Callable[[int], Coroutine[Any, Any, tuple[float, RunPhases]]], count: int, rate: float
) -> TimedRuns:
    """`timed(i)` for i in range(count), one started every 1/`rate` s whatever the answers' pace."""
    tasks = []
    for i in range(count):
        tasks.append(asyncio.create_task(timed(i)))
        await asyncio.sleep(1.0 / rate)
    return TimedRuns.of(await asyncio.gather(*tasks))


async def run_phases(client: Client, run_id: str, launch_s: float) -> RunPhases:
    """The phases of a run that succeeded. Its row says SUCCEEDED from inside its last workflow
    task, so this first waits for the workflow itself to close."""
    handle = client.get_workflow_handle(workflow_id_for(str(uuid.UUID(run_id))))
    phases, _ = await history_phases(handle, launch_s)
    return phases


async def history_phases(
    handle: WorkflowHandle[Any, Any], launch_s: float
) -> tuple[RunPhases, float]:
    """A workflow's phases once it has closed, and when its last workflow task completed (epoch
    seconds, the Temporal server's clock)."""
    scheduled: list[float] = []
    started: list[float] = []
    completed: list[float] = []
    marks = {
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED: scheduled,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: started,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: completed,
    }
    await handle.result()
    async for event in handle.fetch_history_events():
        found = marks.get(event.event_type)
        if found is not None:
            found.append(event.event_time.ToMicroseconds() / 1e6)
    if not (scheduled and started and completed):
        raise RuntimeError(f"workflow {handle.id}: no completed workflow task in its history")
    phases = RunPhases(
        launch_s=launch_s, queue_s=started[0] - scheduled[0], task_s=completed[-1] - started[0]
    )
    return phases, completed[-1]


def describe(phases: list[RunPhases]) -> str:
    """`launch 11 ms · queue 5 ms · workflow task 18 ms` (each the p50 over the runs)."""
    if not phases:
        return "no runs"

    def p50_ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.0f} ms"

    return (
        f"launch {p50_ms([p.launch_s for p in phases])}"
        f" · queue {p50_ms([p.queue_s for p in phases])}"
        f" · workflow task {p50_ms([p.task_s for p in phases])}"
    )
