"""Prometheus metrics of the sweeper, fed by the scheduler after every pass.

- `stepwise_sweeper_passes_total{job, outcome}` — `ok`, `stopped` (SIGTERM mid-pass), `error`
- `stepwise_sweeper_rows_total{job, outcome}` — what each pass reported, e.g. expiry `deleted`,
  reconcile `started`/`failed`/`lost`, quota `resumed`
- `stepwise_sweeper_reconciliations_total{outcome}` — launch reconciliation outcomes
- `stepwise_sweeper_quota_resumes_total` — quota-paused runs resumed
- `stepwise_runs_workflow_task_failing` — open runs whose Temporal workflow task keeps failing
  (the run warning `RUN_WORKFLOW_TASK_FAILING`), as of the last `task_failures` pass
- `stepwise_sweeper_canceled_runs_terminated_total` — canceled runs whose workflow did not close
  within the grace period and was terminated
- `stepwise_sweeper_pass_duration_seconds{job}` — histogram
- `stepwise_sweeper_last_pass_timestamp_seconds{job}` — alert when it stops moving
"""

from __future__ import annotations

import time

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from stepwise_sweeper.job import PassResult

_RECONCILE_OUTCOMES = {"started", "failed", "lost", "adopted", "retry_later"}


class SweeperMetrics:
    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        self.passes = Counter(
            "stepwise_sweeper_passes_total", "Sweeper job passes", ["job", "outcome"],
            registry=registry,
        )  # fmt: skip
        self.rows = Counter(
            "stepwise_sweeper_rows_total", "Rows handled by sweeper passes, by outcome",
            ["job", "outcome"], registry=registry,
        )  # fmt: skip
        self.reconciliations = Counter(
            "stepwise_sweeper_reconciliations_total", "Launch reconciliation outcomes",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.quota_resumes = Counter(
            "stepwise_sweeper_quota_resumes_total", "Quota-paused runs resumed by the sweeper",
            registry=registry,
        )  # fmt: skip
        self.task_failing = Gauge(
            "stepwise_runs_workflow_task_failing",
            "Open runs whose Temporal workflow task keeps failing", registry=registry,
        )  # fmt: skip
        self.cancel_terminations = Counter(
            "stepwise_sweeper_canceled_runs_terminated_total",
            "Canceled runs whose workflow did not close in the grace period and was terminated",
            registry=registry,
        )  # fmt: skip
        self.duration = Histogram(
            "stepwise_sweeper_pass_duration_seconds", "Duration of sweeper job passes", ["job"],
            buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300),
            registry=registry,
        )  # fmt: skip
        self.last_pass = Gauge(
            "stepwise_sweeper_last_pass_timestamp_seconds", "End of the last pass of a job",
            ["job"], registry=registry,
        )  # fmt: skip

    def record_pass(self, job: str, result: PassResult | None, duration_s: float) -> None:
        self.duration.labels(job).observe(duration_s)
        self.last_pass.labels(job).set(time.time())
        if result is None:
            self.passes.labels(job, "error").inc()
            return
        self.passes.labels(job, "stopped" if result.stopped_early else "ok").inc()
        if "workflow_task_failing" in result.gauges:
            self.task_failing.set(result.gauges["workflow_task_failing"])
        for outcome, count in result.counts.items():
            if count <= 0:
                continue
            self.rows.labels(job, outcome).inc(count)
            if job == "reconcile" and outcome in _RECONCILE_OUTCOMES:
                self.reconciliations.labels(outcome).inc(count)
            if job == "quota" and outcome == "resumed":
                self.quota_resumes.inc(count)
            if job == "cancel_enforcement" and outcome == "terminated":
                self.cancel_terminations.inc(count)
