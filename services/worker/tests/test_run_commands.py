"""The command set a run takes (workflow/patches.py): named in its input by today's starters, asked
of Temporal as a patch marker when the starter predates `RunInput.commands`. Both kinds run the
same steps, and each history replays on today's code."""

from __future__ import annotations

import asyncpg
from stepwise_contract.names import RUN_COMMANDS
from stepwise_worker.workflow.patches import CURRENT
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Worker

from .builders import assign, expr
from .history_markers import recorded, replay
from .runs import launch_run, outcome, publish_definition, step_rows


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

    assert recorded(histories["named"])[1] == []
    assert _upserts(histories["named"]) == 0
    # a starter that predates the field: the run asks the current patch, once
    assert recorded(histories["asked"])[1] == [CURRENT]
    assert _upserts(histories["asked"]) == 1

    for history in histories.values():
        await replay(history)
