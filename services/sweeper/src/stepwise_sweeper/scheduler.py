"""Runs each sweeper job on its own interval until the service stops.

Every job has its own task: a slow or failing job never delays another, and a job's passes run one
after the other, so a pass never overlaps the previous pass of the same job. The interval counts
from the start of a pass; a pass that takes longer than the interval (a backlog) is followed at once
by the next. A pass that raises is logged and counted, and the job runs again at its next interval.

On stop, each job finishes its current batch (jobs check the stop event between batches) and its
loop ends; `run` returns once every job is idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence

import msgspec
import structlog

from stepwise_sweeper.job import Job, PassResult

log = structlog.get_logger("stepwise_sweeper.scheduler")

PassObserver = Callable[[str, PassResult | None, float], None]


class ScheduledJob(msgspec.Struct, frozen=True, kw_only=True):
    job: Job
    interval_s: float


class Scheduler:
    def __init__(self, jobs: Sequence[ScheduledJob], on_pass: PassObserver | None = None) -> None:
        """`on_pass(job name, result or None if the pass raised, duration in seconds)`."""
        self._jobs = list(jobs)
        self._on_pass = on_pass

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            for scheduled in self._jobs:
                group.create_task(self._loop(scheduled, stop), name=f"sweep-{scheduled.job.name}")

    async def _loop(self, scheduled: ScheduledJob, stop: asyncio.Event) -> None:
        job = scheduled.job
        with structlog.contextvars.bound_contextvars(job=job.name):
            log.info("sweep_job_scheduled", interval_s=scheduled.interval_s)
            while not stop.is_set():
                started = time.monotonic()
                await self.run_once(job, stop)
                delay = scheduled.interval_s - (time.monotonic() - started)
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), delay)

    async def run_once(self, job: Job, stop: asyncio.Event) -> PassResult | None:
        """One pass of `job`, logged and observed; None if it raised."""
        started = time.monotonic()
        result: PassResult | None = None
        try:
            result = await job.run_pass(stop)
        except Exception:
            duration = time.monotonic() - started
            log.exception("sweep_pass_failed", job=job.name, duration_ms=round(duration * 1000))
        else:
            duration = time.monotonic() - started
            log.info(
                "sweep_pass",
                job=job.name,
                duration_ms=round(duration * 1000),
                stopped_early=result.stopped_early,
                **result.counts,
            )
        if self._on_pass is not None:
            self._on_pass(job.name, result, duration)
        return result
