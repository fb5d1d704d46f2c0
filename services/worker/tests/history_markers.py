"""Reading a recorded run history in worker tests: its markers, and a replay on today's code."""

from __future__ import annotations

import json

from stepwise_contract.converter import DATA_CONVERTER
from stepwise_worker.worker import workflow_runner
from stepwise_worker.workflow.run_workflow import RunWorkflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer


def recorded(history: WorkflowHistory) -> tuple[list[str], list[str]]:
    """(local activity types, patch ids) of the history's markers, in order."""
    activities: list[str] = []
    patches: list[str] = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
            continue
        details = event.marker_recorded_event_attributes.details
        if "data" in details:
            activities.append(json.loads(details["data"].payloads[0].data)["activity_type"])
        if "patch-data" in details:
            patches.append(json.loads(details["patch-data"].payloads[0].data)["id"])
    return activities, patches


async def replay(history: WorkflowHistory) -> None:
    """The history replays on today's interpreter without nondeterminism."""
    replayer = Replayer(
        workflows=[RunWorkflow], data_converter=DATA_CONVERTER, workflow_runner=workflow_runner()
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, repr(result.replay_failure)
