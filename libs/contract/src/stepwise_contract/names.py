"""Every name that crosses a process boundary. Nobody retypes these strings.

There is exactly one task queue and no environment variable can change it.
"""

from __future__ import annotations

import re
from typing import Final

TASK_QUEUE: Final = "workflow-runtime-v2"
WORKFLOW_TYPE: Final = "WorkflowRuntimeV2"
WORKFLOW_ID_PREFIX: Final = "workflow-runtime-v2:run:"
DEFAULT_EXECUTION_TIMEOUT_S: Final = 30 * 24 * 3600
# The interpreter's command set that runs started now take (`RunInput.commands`); the worker's
# workflow/patches.py lists what it covers.
RUN_COMMANDS: Final = "stepwise-commands-2026-12b"

SIGNAL_EVENT: Final = "workflowRuntimeV2Event"
SIGNAL_HUMAN_TASK: Final = "workflowRuntimeV2HumanTask"
SIGNAL_QUOTA_RESUME: Final = "workflowRuntimeV2QuotaResume"

QUERY_CURRENT_STEP: Final = "workflowRuntimeV2CurrentStep"
QUERY_CURRENT_WAIT: Final = "workflowRuntimeV2CurrentWait"
QUERY_SUMMARY: Final = "workflowRuntimeV2Summary"

EVENTS_STREAM: Final = "WORKFLOW_EVENTS"
EVENTS_SUBJECT_PREFIX: Final = "workflow.events"
EVENTS_SUBJECTS: Final = "workflow.events.>"
EVENTS_CONSUMER: Final = "workflow-event-router"
DLQ_STREAM: Final = "WORKFLOW_EVENTS_DLQ"
DLQ_SUBJECT_PREFIX: Final = "workflow.dlq"
DLQ_SUBJECTS: Final = "workflow.dlq.>"
DLQ_REASON_HEADER: Final = "Stepwise-Dlq-Reason"
DLQ_DETAIL_HEADER: Final = "Stepwise-Dlq-Detail"
# the subject the dead letter was originally published to (for an operator's republish)
DLQ_SUBJECT_HEADER: Final = "Stepwise-Dlq-Subject"
MSG_ID_HEADER: Final = "Nats-Msg-Id"

BUILTIN_EMPTY_SCHEMA: Final = "payload.Empty.v1"

# An event name is one or more NATS subject tokens (it ends the subject): no whitespace, no
# wildcards, no empty token. The API refuses events with another name and publish validation
# refuses waits and triggers on one, since no event could ever match them.
EVENT_NAME_PATTERN: Final = re.compile(r"^[A-Za-z0-9_:\-]+(\.[A-Za-z0-9_:\-]+)*$")
MAX_EVENT_NAME: Final = 200
EVENT_NAME_RULE: Final = "letters, digits, _ - : separated by single dots (max 200)"


def is_valid_event_name(name: str) -> bool:
    return len(name) <= MAX_EVENT_NAME and EVENT_NAME_PATTERN.match(name) is not None


def workflow_id_for(run_id: str) -> str:
    """Temporal workflow id of a run: `workflow-runtime-v2:run:<run_id>`."""
    return f"{WORKFLOW_ID_PREFIX}{run_id}"


def run_id_from_workflow_id(workflow_id: str) -> str | None:
    if not workflow_id.startswith(WORKFLOW_ID_PREFIX):
        return None
    return workflow_id[len(WORKFLOW_ID_PREFIX) :]


def event_subject(tenant: str, event_type: str) -> str:
    """Subject a producer publishes an event to: `workflow.events.<tenant>.<event_type>`."""
    return f"{EVENTS_SUBJECT_PREFIX}.{tenant}.{event_type}"


def dlq_subject(tenant: str | None) -> str:
    return f"{DLQ_SUBJECT_PREFIX}.{tenant or 'unknown'}"


def trigger_fire_key(event_id: str, workflow_id: str) -> str:
    return f"event:{event_id}:{workflow_id}"
