"""The scheduler: a job's passes never overlap, a slow or failing job starves no other, a stop ends
the current pass after its batch, and every pass lands in the metrics."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry
from stepwise_sweeper.job import PassResult
from stepwise_sweeper.metrics import SweeperMetrics
from stepwise_sweeper.scheduler import ScheduledJob, Scheduler


class BatchedJob:
    """Passes of `batches` batches of `batch_s` seconds each, checking the stop between batches."""

    def __init__(self, name: str, batches: int, batch_s: float) -> None:
        self.name = name
        self.batches = batches
        self.batch_s = batch_s
        self.passes: list[tuple[float, float]] = []
        self.running = 0
        self.max_running = 0

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        started = time.monotonic()
        done = 0
        try:
            for _ in range(self.batches):
                if stop.is_set():
                    return PassResult(counts={"deleted": done}, stopped_early=True)
                await asyncio.sleep(self.batch_s)
                done += 1
            return PassResult(counts={"deleted": done})
        finally:
            self.running -= 1
            self.passes.append((started, time.monotonic()))


class FailingJob:
    name = "failing"

    def __init__(self) -> None:
        self.calls = 0

    async def run_pass(self, stop: asyncio.Event) -> PassResult:
        self.calls += 1
        raise RuntimeError("database unreachable")


async def test_jobs_run_independently_without_overlap_and_stop_after_a_batch() -> None:
    slow = BatchedJob("slow", batches=10, batch_s=0.05)  # 0.5 s passes, interval 0.3 s
    fast = BatchedJob("fast", batches=1, batch_s=0.001)
    failing = FailingJob()
    registry = CollectorRegistry()
    metrics = SweeperMetrics(registry)
    scheduler = Scheduler(
        [
            ScheduledJob(job=slow, interval_s=0.3),
            ScheduledJob(job=fast, interval_s=0.02),
            ScheduledJob(job=failing, interval_s=0.05),
        ],
        on_pass=metrics.record_pass,
    )
    stop = asyncio.Event()
    running = asyncio.create_task(scheduler.run(stop))

    # Wait (by progress, not by the clock: a loaded machine slows everything) until the slow job
    # is in the middle of its third pass and the others have had many passes.
    def progressed() -> bool:
        return bool(
            len(slow.passes) >= 2
            and slow.running
            and len(fast.passes) >= 20
            and failing.calls >= 10
        )

    for _ in range(2000):  # at most ~20 s
        if progressed():
            break
        await asyncio.sleep(0.01)
    stop_at = time.monotonic()
    stop.set()
    await asyncio.wait_for(running, 1)
    stopped_in = time.monotonic() - stop_at

    assert stopped_in < 0.2, "the current batch ends, the pass does not run to its end"
    assert slow.max_running == 1 and fast.max_running == 1
    assert len(slow.passes) >= 2
    for (_, previous_end), (next_start, _) in zip(slow.passes, slow.passes[1:], strict=False):
        assert next_start >= previous_end
        # a pass longer than the interval is followed at once by the next (not 0.3 s later)
        assert next_start - previous_end < 0.15
    assert len(fast.passes) >= 20, "the fast job is not held up by the slow one"
    assert failing.calls >= 10, "a failing job keeps its schedule"

    def sample(name: str, **labels: str) -> float:
        value = registry.get_sample_value(name, labels)
        return value or 0.0

    assert sample("stepwise_sweeper_passes_total", job="slow", outcome="ok") == len(slow.passes) - 1
    assert sample("stepwise_sweeper_passes_total", job="slow", outcome="stopped") == 1
    assert sample("stepwise_sweeper_rows_total", job="slow", outcome="deleted") >= 10
    assert sample("stepwise_sweeper_passes_total", job="failing", outcome="error") == failing.calls
    assert sample("stepwise_sweeper_pass_duration_seconds_count", job="fast") == len(fast.passes)


def test_outcomes_feed_the_reconciliation_and_quota_counters() -> None:
    registry = CollectorRegistry()
    metrics = SweeperMetrics(registry)
    metrics.record_pass("reconcile", PassResult(counts={"started": 2, "failed": 1, "lost": 1}), 0.1)
    metrics.record_pass("quota", PassResult(counts={"resumed": 4, "signal_failed": 0}), 0.1)

    def sample(name: str, labels: dict[str, str]) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("stepwise_sweeper_reconciliations_total", {"outcome": "started"}) == 2
    assert sample("stepwise_sweeper_reconciliations_total", {"outcome": "failed"}) == 1
    assert sample("stepwise_sweeper_reconciliations_total", {"outcome": "lost"}) == 1
    assert sample("stepwise_sweeper_quota_resumes_total", {}) == 4
    assert (
        sample("stepwise_sweeper_rows_total", {"job": "quota", "outcome": "signal_failed"}) is None
    )
