"""What Temporal knows about one workflow's failing workflow task: the pending task's attempt and
the failure of the last failed (or timed-out) workflow task in its history.

Temporal writes a `WorkflowTaskFailed` event for the first failed attempt of a streak only (later
attempts are retried without new events), so the newest such event is the failure of the
current streak; signals received meanwhile may follow it, hence a few pages of reverse history.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from stepwise_contract.task_failures import MESSAGE_LIMIT, WorkflowTaskFailure
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client

HISTORY_PAGE = 100
_CAUSE_PREFIX = "WORKFLOW_TASK_FAILED_CAUSE_"


class TaskProbe:
    def __init__(self, client: Client, *, timeout_s: float, history_pages: int = 5) -> None:
        self._client = client
        self._timeout = timedelta(seconds=timeout_s)
        self._history_pages = history_pages

    async def pending_attempt(self, workflow_id: str, run_id: str) -> int | None:
        """The attempt of the workflow's pending workflow task when it has failed at least once
        (attempt ≥ 2), else None. Raises Temporal's RPCError (NOT_FOUND: no such workflow)."""
        handle = self._client.get_workflow_handle(workflow_id, run_id=run_id)
        described = await handle.describe(rpc_timeout=self._timeout)
        attempt = described.raw_description.pending_workflow_task.attempt
        return attempt if attempt >= 2 else None

    async def failure(self, workflow_id: str, run_id: str, attempts: int) -> WorkflowTaskFailure:
        """The failure of the streak: message and cause of its failed (or timed-out) task event,
        `since` that event's time."""
        event = await self._last_task_problem(workflow_id, run_id)
        if event is None:
            since = datetime.now(UTC)
            message = (
                "the workflow task keeps failing (no failure event in the newest "
                f"{self._history_pages * HISTORY_PAGE} history events)"
            )
            return WorkflowTaskFailure(message=message, attempts=attempts, since=since)
        since = event.event_time.ToDatetime(tzinfo=UTC)
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
            timeout = event.workflow_task_timed_out_event_attributes.timeout_type
            kind = TimeoutType.Name(timeout).removeprefix("TIMEOUT_TYPE_").lower()
            return WorkflowTaskFailure(
                message=f"the workflow task timed out ({kind}): no worker completed it — "
                "a worker crashed or is blocked",
                attempts=attempts,
                since=since,
                cause="TimedOut",
            )
        attributes = event.workflow_task_failed_event_attributes
        failure = attributes.failure
        failure_type = failure.application_failure_info.type or None
        text = failure.message or "(no message)"
        message = f"{failure_type}: {text}" if failure_type else text
        cause = WorkflowTaskFailedCause.Name(attributes.cause).removeprefix(_CAUSE_PREFIX)
        return WorkflowTaskFailure(
            message=_clip(message),
            attempts=attempts,
            since=since,
            cause=cause.title().replace("_", ""),
            failure_type=failure_type,
        )

    async def _last_task_problem(self, workflow_id: str, run_id: str) -> HistoryEvent | None:
        token = b""
        wanted = (
            EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
            EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
        )
        for _ in range(self._history_pages):
            response = await self._client.workflow_service.get_workflow_execution_history_reverse(
                GetWorkflowExecutionHistoryReverseRequest(
                    namespace=self._client.namespace,
                    execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                    maximum_page_size=HISTORY_PAGE,
                    next_page_token=token,
                ),
                timeout=self._timeout,
            )
            for event in response.history.events:
                if event.event_type in wanted:
                    return event
            token = response.next_page_token
            if not token:
                return None
        return None


def _clip(text: str) -> str:
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"
