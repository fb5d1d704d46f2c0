"""The `RUN_QUEUED_NO_PROGRESS` warning (SPEC §7): a RUNNING run with no step after the
threshold, and whether any worker polls the task queue (Temporal's task-queue description)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import structlog
from stepwise_contract.names import TASK_QUEUE
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

log = structlog.get_logger("stepwise_api.queue_probe")

CODE = "RUN_QUEUED_NO_PROGRESS"
NO_POLLERS = "queued — no worker is polling the task queue"
POLLERS_IDLE = "queued — workers are polling but have not picked this run up"


async def workflow_pollers(client: Client) -> int | None:
    """How many workers poll the task queue for workflow tasks; None if Temporal is unreachable."""
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=TASK_QUEUE),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            ),
            timeout=timedelta(seconds=3),
        )
    except Exception as exc:
        log.warning("describe_task_queue_failed", error=str(exc))
        return None
    return len(response.pollers)


def is_stuck(status: str, started_at: datetime, steps: int, threshold_s: float) -> bool:
    age = (datetime.now(UTC) - started_at).total_seconds()
    return status == "RUNNING" and steps == 0 and age > threshold_s


async def warning(client: Client, started_at: datetime) -> dict[str, str]:
    pollers = await workflow_pollers(client)
    age = int((datetime.now(UTC) - started_at).total_seconds())
    if pollers is None:
        message = "queued — Temporal could not be asked whether a worker polls the task queue"
    elif pollers == 0:
        message = NO_POLLERS
    else:
        message = POLLERS_IDLE
    return {
        "code": CODE,
        "message": f"{message} ({TASK_QUEUE!r}); the run started {age} s ago and has no step yet",
    }
