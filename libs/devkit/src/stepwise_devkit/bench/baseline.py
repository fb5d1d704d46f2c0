"""The hand-written baseline: the Stepwise definitions' work, written directly on Temporal.

It runs on its own task queue (a benchmark queue, not the product's) in a worker process of its own
(`baseline_worker.py`), as the Stepwise worker does, against the same Temporal server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

BASELINE_TASK_QUEUE = "stepwise-bench-baseline"
# The Temporal floor of the latency figures (`temporal_floor.py`) runs on a queue of its own, with a
# worker set up as ours is: its backlog and its worker's stops touch no other baseline.
FLOOR_TASK_QUEUE = "stepwise-bench-floor"
STEPS = 10


@activity.defn(name="bench_echo")
async def bench_echo(value: Any) -> Any:
    return {"value": value}


@workflow.defn(name="BenchRegular10")
class BenchRegular10:
    """Ten sequential regular activities (what a naive hand-written workflow does)."""

    @workflow.run
    async def run(self, value: Any) -> Any:
        result: Any = None
        for _ in range(STEPS):  # each step echoes the input, as the definition's steps do
            result = await workflow.execute_activity(
                bench_echo, value, start_to_close_timeout=timedelta(seconds=30)
            )
        return result


@workflow.defn(name="BenchLocal10")
class BenchLocal10:
    """Ten sequential local activities (the physical floor for in-process actions)."""

    @workflow.run
    async def run(self, value: Any) -> Any:
        result: Any = None
        for _ in range(STEPS):  # each step echoes the input, as the definition's steps do
            result = await workflow.execute_local_activity(
                bench_echo, value, start_to_close_timeout=timedelta(seconds=30)
            )
        return result


@workflow.defn(name="BenchLocalLarge10")
class BenchLocalLarge10:
    """Ten local activities passing a large value, one per workflow task: a 1 ms timer closes the
    task after each, so each completion carries one inline result (ten 1 MB results in a single
    completion exceed gRPC's 4 MB and Temporal terminates the workflow)."""

    @workflow.run
    async def run(self, value: Any) -> Any:
        result: Any = {"value": value}
        for _ in range(STEPS):  # each step echoes the previous output's value
            result = await workflow.execute_local_activity(
                bench_echo, result["value"], start_to_close_timeout=timedelta(seconds=30)
            )
            await workflow.sleep(0.001)
        return result


@workflow.defn(name="BenchOneStep")
class BenchOneStep:
    """One local activity, as a one-step Stepwise run is one workflow task with its action a local
    activity (the floor of the latency figures: no Stepwise code at all)."""

    @workflow.run
    async def run(self, value: Any) -> Any:
        return await workflow.execute_local_activity(
            bench_echo, value, start_to_close_timeout=timedelta(seconds=30)
        )


@workflow.defn(name="BenchNoop")
class BenchNoop:
    """Does nothing (the baseline of a launch: a raw start of a trivial workflow)."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchWaiter")
class BenchWaiter:
    """Waits for one signal, then completes (the baseline of event routing)."""

    def __init__(self) -> None:
        self._got: Any = None

    @workflow.signal(name="bench_event")
    def event(self, payload: Any) -> None:
        self._got = payload

    @workflow.run
    async def run(self) -> Any:
        await workflow.wait_condition(lambda: self._got is not None)
        return self._got


WORKFLOWS = [BenchRegular10, BenchLocal10, BenchLocalLarge10, BenchOneStep, BenchNoop, BenchWaiter]
ACTIVITIES = [bench_echo]
