"""A run whose start carries its definition, input and action facts (`RunInput.preloaded`, sent
by the API's launch) skips the load's local activity, schedules from the facts it was sent, and
replays; a history whose first task loaded anyway (a worker from before the preload) replays on
the loading path."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.payloads import PreloadedRun
from stepwise_worker.actions.builtin import builtin_actions
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.workflow.patches import CURRENT, PRELOADED_RUN
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.worker import Worker

from .builders import action, assign, expr
from .history_markers import recorded, replay
from .runs import (
    Probe,
    launch_run,
    outcome,
    preloaded_run,
    probe_actions,
    publish_definition,
    run_row,
    step_rows,
)

HISTORIES = Path(__file__).parent / "histories"

STEPS = [
    action("echo", "core.echo", {"value": expr("payload.n")}, "vars.echoed"),
    # a regular activity: only the facts sent with the start say so
    action("remote", "test.countRemote", {"key": expr("$string(payload.n)")}),
    assign("a", **{"vars.doubled": expr("vars.echoed.value * 2")}),
]


async def _launch(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    *,
    preload: Any,
    steps: list[Any] = STEPS,
    payload: Any = None,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Launch a run of `steps`; `preload` maps the stored definition and its hash to what the
    start carries (None: nothing, the workflow loads the run)."""
    payload = payload if payload is not None else {"n": 21}
    workflow_id, version, digest = await publish_definition(
        pool, tenant_id, {"name": "t", "steps": steps}
    )
    stored = await pool.fetchval(
        "SELECT definition_json FROM workflow_definition_versions WHERE workflow_id = $1",
        uuid.UUID(workflow_id),
    )
    return await launch_run(
        pool,
        client,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=version,
        definition_hash=digest,
        payload=payload,
        preloaded=preload(stored, digest, payload),
    )


def _registry(probe: Probe) -> ActionRegistry:
    return ActionRegistry([*builtin_actions(), *probe_actions(probe)])


def _scheduled(history: WorkflowHistory) -> list[str]:
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


async def test_a_preloaded_run_skips_the_load_and_replays(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str, probe: Probe
) -> None:
    registry = _registry(probe)
    run_id, handle = await _launch(
        pool,
        temporal_client,
        tenant_id,
        preload=lambda d, h, p: preloaded_run(d, h, p, registry),
    )
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    row = await run_row(pool, run_id)
    assert row["status"] == "SUCCEEDED"
    assert row["result_json"]["vars"]["doubled"] == 42
    assert [s["status"] for s in await step_rows(pool, run_id)] == ["SUCCEEDED"] * 3
    history = await handle.fetch_history()
    activities, patches = recorded(history)
    assert "stepwise.load_run" not in activities
    # the start names the command set (`RunInput.commands`): no patch marker at all
    assert patches == []
    assert _scheduled(history) == ["stepwise.execute_action"]  # test.countRemote, regular
    await replay(history)


async def test_a_run_started_without_a_preload_loads_itself(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    run_id, handle = await _launch(pool, temporal_client, tenant_id, preload=lambda d, h, p: None)
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    activities, patches = recorded(await handle.fetch_history())
    assert activities[0] == "stepwise.load_run"
    assert patches == []


async def test_a_history_that_loaded_despite_a_preloaded_input_replays() -> None:
    """A new API's start taken by a worker from before the preload: that worker ignored the
    field and loaded. Today's worker replaying such a history must load too. The committed
    `actions_in_activity` history was recorded by such a worker; its start is given a preload."""
    history = json.loads((HISTORIES / "actions_in_activity.json").read_text())
    start = history["events"][0]["workflowExecutionStartedEventAttributes"]
    encoded = start["input"]["payloads"][0]
    run_input = json.loads(base64.b64decode(encoded["data"]))
    assert "preloaded" not in run_input
    _activities, patches = recorded(WorkflowHistory.from_json("recorded", history))
    assert CURRENT not in patches and PRELOADED_RUN not in patches
    # what it carries does not matter: the replay takes the load's recorded result
    preloaded = PreloadedRun(definition={"name": "t", "steps": []}, definition_hash="h")
    run_input["preloaded"] = json.loads(DATA_CONVERTER.payload_converter.to_payload(preloaded).data)
    encoded["data"] = base64.b64encode(json.dumps(run_input).encode()).decode()
    await replay(WorkflowHistory.from_json("loaded-despite-preload", history))


async def test_a_preloaded_definition_that_does_not_decode_fails_the_run(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    def broken(_d: Any, digest: str, payload: Any) -> PreloadedRun:
        return PreloadedRun(definition={"steps": 5}, definition_hash=digest, payload=payload)

    run_id, handle = await _launch(pool, temporal_client, tenant_id, preload=broken)
    assert await outcome(handle) == "failed"
    error = (await run_row(pool, run_id))["error_json"]
    assert (error["category"], error["code"]) == ("ValidationError", "INVALID_WORKFLOW_DEFINITION")


async def test_the_action_facts_sent_are_the_ones_used(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    """Facts recorded with the start, not the replaying worker's catalog, decide how an action
    is scheduled: an action the starter did not know fails its step as unknown."""

    def without_facts(definition: Any, digest: str, payload: Any) -> PreloadedRun:
        return PreloadedRun(definition=definition, definition_hash=digest, payload=payload)

    run_id, handle = await _launch(pool, temporal_client, tenant_id, preload=without_facts)
    assert await outcome(handle) == "failed"
    error = (await run_row(pool, run_id))["error_json"]
    assert (error["code"], error["nodePath"]) == ("UNKNOWN_ACTION", "root.steps[0]")
