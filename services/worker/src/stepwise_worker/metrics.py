"""Prometheus metrics of the worker, on the default registry (served by the ops server's /metrics).

Recorded only in activities, never in workflow code: a workflow task is replayed (after a worker
restart, a cache eviction, a query), an activity's effect is not. Projections count what their
status-guarded statement really changed, so a local activity executed twice counts once.
Labels are closed sets: run/step status, step type, wait type, error category and the action
(`<id>@<version>`, bounded by the deployed catalog) — never a run, tenant or workflow id.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Histogram
from stepwise_contract.enums import ErrorCategory

_CATEGORIES = frozenset(c.value for c in ErrorCategory)

RUNS_COMPLETED = Counter(
    "stepwise_worker_runs_completed_total",
    "Runs whose final status this worker projected, by status.",
    ["status"],
)
STEPS = Counter(
    "stepwise_worker_steps_total",
    "Completed steps projected by this worker, by step type and final status.",
    ["step_type", "status"],
)
STEP_SECONDS = Histogram(
    "stepwise_worker_step_duration_seconds",
    "Duration of completed steps (start row to completion row), by step type.",
    ["step_type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600, 86400),
)
ACTION_SECONDS = Histogram(
    "stepwise_worker_action_duration_seconds",
    "Duration of one action invocation (handler with input/output validation), by action.",
    ["action"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
ACTION_FAILURES = Counter(
    "stepwise_worker_action_failures_total",
    "Action invocations that failed, by action and error category.",
    ["action", "category"],
)
WAITS_OPENED = Counter(
    "stepwise_worker_waits_opened_total",
    "Wait rows opened, by wait type (event, time, human, quota).",
    ["type"],
)
WAITS_CLOSED = Counter(
    "stepwise_worker_waits_closed_total",
    "Wait rows closed, by wait type and outcome (resolved, timed_out, canceled).",
    ["type", "outcome"],
)
QUOTA_PAUSES = Counter(
    "stepwise_worker_quota_pauses_total",
    "Runs paused because the tenant's step quota was exhausted.",
)


def failure_category(category: str) -> str:
    """An action plugin may raise any category string: keep the label a closed set."""
    return category if category in _CATEGORIES else "other"


def record_completed_steps(rows: Iterable[Any]) -> None:
    """`[step_type, status, duration_ms]` per step row a projection statement completed."""
    for step_type, status, duration_ms in rows:
        STEPS.labels(step_type, status).inc()
        if duration_ms is not None:
            STEP_SECONDS.labels(step_type).observe(duration_ms / 1000)


def record_closed_waits(rows: Iterable[Any]) -> None:
    """`wait_type`/`outcome` per wait row a statement closed (RETURNING of `closed_waits`)."""
    for row in rows:
        WAITS_CLOSED.labels(row["wait_type"], row["outcome"]).inc()
