"""Runs whose Temporal workflow task keeps failing: how they are found and what is recorded.

A workflow task that raises (a bug in workflow code, a non-determinism error, the SDK's 2 s
deadlock detector) is retried by Temporal forever: the run reads RUNNING and never progresses.
Temporal (server 1.30+) marks such a workflow with the system search attribute
`TemporalReportedProblems` after `PROBLEMS_DYNAMIC_CONFIG` consecutive failed or timed-out workflow
tasks and clears it on the first task that completes. The sweeper lists the marked workflows of
Stepwise runs (`FAILING_RUNS_QUERY`), records a `WorkflowTaskFailure` on the run row
(`workflow_runs.workflow_task_failure_json`), and the API shows it as the run warning
`RUN_WORKFLOW_TASK_FAILING`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec

from stepwise_contract.names import WORKFLOW_ID_PREFIX

WARNING_CODE: Final = "RUN_WORKFLOW_TASK_FAILING"

# Temporal's dynamic config key, and the value every Stepwise stack sets: flag on the first
# failure, so the warning shows within seconds (one workflow task timeout, 10 s, per extra
# attempt otherwise). Temporal's default of 5 (or 0, off) delays or hides the warning.
PROBLEMS_DYNAMIC_CONFIG: Final = "system.numConsecutiveWorkflowTaskProblemsToTriggerSearchAttribute"
PROBLEMS_THRESHOLD: Final = 1

FAILING_RUNS_QUERY: Final = (
    "ExecutionStatus = 'Running' AND TemporalReportedProblems IS NOT NULL"
    f" AND WorkflowId STARTS_WITH '{WORKFLOW_ID_PREFIX}'"
)

# bounds what one run row carries; the full text stays in Temporal's history
MESSAGE_LIMIT: Final = 2000


class WorkflowTaskFailure(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the sweeper read from Temporal about a run's failing workflow task.

    `attempts` is the attempt of the pending workflow task (2 = it failed once and is being
    retried); `since` when the first task of this streak failed (its history event); `message`
    that failure, `Type: text` (or a timeout when no worker answered); `cause` Temporal's
    failure cause, e.g. `WorkflowWorkerUnhandledFailure`, `NonDeterministicError`.
    """

    message: str
    attempts: int
    since: datetime
    cause: str | None = None
    failure_type: str | None = None


def decode_failure(stored: Any) -> WorkflowTaskFailure | None:
    """The recorded failure of a run row's json column; None when absent or unreadable."""
    if not isinstance(stored, dict):
        return None
    try:
        return msgspec.convert(stored, WorkflowTaskFailure, strict=False)
    except msgspec.ValidationError:
        return None
