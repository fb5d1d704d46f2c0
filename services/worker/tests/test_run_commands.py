"""The command set a run takes (workflow/patches.py): named in its input by today's starters, asked
of Temporal as a patch marker when the starter predates `RunInput.commands`. Both kinds run the
same steps, and each history replays on today's code."""

from __future__ import annotations

import asyncpg
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.names import RUN_COMMANDS
from stepwise_worker.worker import workflow_runner
from stepwise_worker.workflow.patches import CURRENT
from stepwise_worker.workflow.run_workflow import RunWorkflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer, Worker

from .builders import assign, expr
from .runs import launch_run, outcome, publish_definition, step_rows


def _patch_ids(history: WorkflowHistory) -> list[str]:
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_patch":
                found.append(attrs.details["patch-data"].payloads[0].data.decode())
    return found


def _upserts(history: WorkflowHistory) -> int:
    kind = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    return sum(1 for event in history.events if event.event_type == kind)


async def test_a_run_named_by_its_input_asks_no_patch_and_an_older_start_asks_one(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    assert CURRENT == RUN_COMMANDS
    steps = [
        assign("a", x=1),
        {"id": "e", "type": "action.call", "config": {"actionId": "core.echo", "version": 1,
         "inputMapping": {"value": expr("vars.x")}, "saveAs": "vars.echoed"}},
    ]  # fmt: skip
    workflow_id, version, digest = await publish_definition(
        pool, tenant_id, {"name": "commands", "steps": steps}
    )
    histories: dict[str, WorkflowHistory] = {}
    for label, commands in (("named", RUN_COMMANDS), ("asked", None)):
        run_id, handle = await launch_run(
            pool,
            temporal_client,
            tenant_id=tenant_id,
            workflow_id=workflow_id,
            version=version,
            definition_hash=digest,
            commands=commands,
        )
        assert await outcome(handle) == "completed", label
        result = await handle.result()
        assert result["vars"]["echoed"] == {"value": 1}, label
        # the same command set either way: the step start travels in the action's activity
        assert [r["step_type"] for r in await step_rows(pool, run_id)] == [
            "transform.assign",
            "action.call",
        ], label
        histories[label] = await handle.fetch_history()

    assert _patch_ids(histories["named"]) == []
    assert _upserts(histories["named"]) == 0
    # a starter that predates the field: the run asks the current patch, once
    assert any(CURRENT in patch for patch in _patch_ids(histories["asked"]))
    assert _upserts(histories["asked"]) == 1

    replayer = Replayer(
        workflows=[RunWorkflow], data_converter=DATA_CONVERTER, workflow_runner=workflow_runner()
    )
    for label, history in histories.items():
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, f"{label}: {replayed.replay_failure!r}"
