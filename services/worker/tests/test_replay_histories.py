"""Replay safety (SPEC §5): recorded histories of representative runs replay on today's code.

`histories/*.json` are Temporal histories recorded from real runs (waits, human task, child runs
with a retry, quota pause, cancellation, continue-as-new with a carried signal, large values as
placeholders). Replaying them
with `Replayer` fails when a change alters the commands the interpreter issues for the same
history — such a change must ship behind `workflow.patched`.

Re-record (only for a deliberate, unreleased change of command order):
`STEPWISE_RECORD_HISTORIES=1 .venv/bin/pytest services/worker/tests/test_replay_histories.py`
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_worker.actions.builtin import builtin_actions
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.worker import WorkerOptions, build_worker, workflow_runner
from stepwise_worker.workflow.checkpoint import CONTINUE_AS_NEW_EVERY
from stepwise_worker.workflow.run_workflow import RunWorkflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from .builders import expr
from .runs import publish_definition, start_steps
from .signalling import (
    complete_task,
    open_wait,
    resume_quota,
    send_event,
    wait_for_row,
)

HISTORIES = Path(__file__).parent / "histories"
EXPECTED = {
    "waits",
    "children_parent",
    "children_child",
    "quota",
    "cancel",
    "continue_as_new_first",
    "continue_as_new_second",
    # recorded before the `stepwise-can-closes-task` patch: must keep replaying
    "continue_as_new_v1_first",
    "continue_as_new_v1_second",
    # action.call with its step start carried in the action activity (patch
    # `stepwise-action-start-in-activity`); the histories above predate it (old path)
    "actions_in_activity",
    # a 300 KiB value recorded before the claim-check codec: `{"$blobRef": id}` placeholders in
    # the load_run and action results and a `result_externalized` run completion
    "large_values_v1",
    # runs named by the command set `stepwise-commands-2026-12` (no patch marker), recorded before
    # a data step that ends the run was held for the run's completion: a run ending in state.set,
    # one paused for quota at its last step, one whose last step fails
    "commands_2026_12",
    "commands_2026_12_quota",
    "commands_2026_12_failed",
    # a starter that named `stepwise-commands-2026-12b` and a worker one set older that ran the
    # run (it asked its own set as a patch): replays on that set, as the marker says
    "older_worker_2026_12",
}


def _read(path: Path) -> str:
    if path.suffix == ".gz":  # long histories (continue-as-new) are stored compressed
        return gzip.decompress(path.read_bytes()).decode()
    return path.read_text()


def stored() -> dict[str, Path]:
    return {p.name.split(".")[0]: p for p in HISTORIES.iterdir() if ".json" in p.name}


async def test_committed_histories_replay() -> None:
    files = stored()
    found = set(files)
    assert found >= EXPECTED, f"missing histories: {EXPECTED - found}"
    replayer = Replayer(
        workflows=[RunWorkflow], data_converter=DATA_CONVERTER, workflow_runner=workflow_runner()
    )
    for name in sorted(found):
        history = WorkflowHistory.from_json(f"replay-{name}", _read(files[name]))
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"


async def test_a_changed_command_order_is_detected() -> None:
    """The guard itself: a history whose recorded commands differ from what the code issues."""
    history = json.loads((HISTORIES / "waits.json").read_text())
    for event in history["events"]:
        attrs = event.get("markerRecordedEventAttributes")
        if attrs is None:
            continue
        data = attrs["details"]["data"]["payloads"][0]
        decoded = json.loads(base64.b64decode(data["data"]))
        if decoded.get("activity_type") == "stepwise.wait.open":
            decoded["activity_type"] = "stepwise.wait.somethingElse"
            data["data"] = base64.b64encode(json.dumps(decoded).encode()).decode()
            break
    replayer = Replayer(
        workflows=[RunWorkflow], data_converter=DATA_CONVERTER, workflow_runner=workflow_runner()
    )
    result = await replayer.replay_workflow(
        WorkflowHistory.from_json("replay-tampered", history), raise_on_replay_failure=False
    )
    assert result.replay_failure is not None
    assert "Nondeterminism" in repr(result.replay_failure)


# -- recording (opt-in) --------------------------------------------------------------------------


async def _save(
    client: Client,
    workflow_id: str,
    name: str,
    run_id: str | None = None,
    *,
    compress: bool = False,
) -> None:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    for old in HISTORIES.glob(f"{name}.json*"):
        old.unlink()
    text = json.dumps(json.loads(history.to_json()), indent=1) + "\n"
    if compress:
        (HISTORIES / f"{name}.json.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    else:
        (HISTORIES / f"{name}.json").write_text(text)


@pytest.mark.skipif(
    not os.environ.get("STEPWISE_RECORD_HISTORIES"), reason="re-records the committed histories"
)
async def test_record_histories(temporal_client: Client, pool: asyncpg.Pool) -> None:
    client = temporal_client
    worker = build_worker(
        client, pool, registry=ActionRegistry(builtin_actions()), options=WorkerOptions()
    )
    async with worker:
        # waits: event (mismatch, then match), time (duration, past), human (invalid, valid), timeout
        tenant = str(uuid.uuid4())
        steps = [
            {"id": "e", "type": "event.wait", "config": {"eventName": "E", "correlationKey": expr("payload.k"),
             "filters": [{"path": "ok", "op": "=", "value": True}], "assign": {"vars.got": expr("vars.event.n")}}},
            {"id": "t", "type": "time.wait", "config": {"mode": "duration", "durationMs": 50}},
            {"id": "p", "type": "time.wait", "config": {"mode": "until", "until": "2001-01-01T00:00:00Z"}},
            {"id": "h", "type": "human.task", "config": {"taskType": "ok", "title": "T",
             "formSchema": {"type": "object", "required": ["yes"]}}},
            {"id": "tc", "type": "control.tryCatch",
             "try": [{"id": "x", "type": "event.wait", "config": {"eventName": "NEVER", "timeoutMs": 50}}],
             "catch": [{"id": "c", "type": "transform.assign", "config": {"assign": {"vars.c": True}}}]},
        ]  # fmt: skip
        run_id, handle = await start_steps(pool, client, tenant, steps, {"k": "K"})
        await open_wait(pool, run_id, "event")
        await send_event(handle, "E", {"ok": False, "n": 0}, key="K")
        await send_event(handle, "E", {"ok": True, "n": 1}, key="K")
        await open_wait(pool, run_id, "human")
        task = await wait_for_row(
            pool, "SELECT task_id FROM workflow_tasks WHERE run_id = $1", uuid.UUID(run_id)
        )
        await complete_task(handle, str(task["task_id"]), {"no": 1})
        await complete_task(handle, str(task["task_id"]), {"yes": 1})
        await handle.result()
        await _save(client, handle.id, "waits")

        # children: a child that fails once, retried as a new child run
        tenant = str(uuid.uuid4())
        child, _v, _h = await publish_definition(pool, tenant, {"name": "child", "steps": [
            {"id": "inc", "type": "action.call", "config": {"actionId": "store.increment", "version": 1,
             "inputMapping": {"namespace": "r", "key": "k"}, "saveAs": "vars.counter"}},
            {"id": "if", "type": "control.if", "condition": expr("vars.counter.value < 2"),
             "then": [{"id": "f", "type": "action.call", "config": {"actionId": "core.fail", "version": 1,
                                                                    "inputMapping": {"message": "x"}}}]},
        ]})  # fmt: skip
        steps = [{"id": "c", "type": "control.callWorkflow", "workflowId": child,
                  "retry": {"maxAttempts": 2, "backoffMs": 10, "jitter": False},
                  "outputMapping": {"vars.count": expr("childRun.vars.counter.value")}}]  # fmt: skip
        run_id, handle = await start_steps(pool, client, tenant, steps)
        await handle.result()
        await _save(client, handle.id, "children_parent")
        last_child = await pool.fetchrow(
            "SELECT temporal_workflow_id FROM workflow_runs WHERE parent_run_id = $1 ORDER BY started_at DESC LIMIT 1",
            uuid.UUID(run_id),
        )  # fmt: skip
        assert last_child is not None
        await _save(client, last_child["temporal_workflow_id"], "children_child")

        # quota: pause, then resume with capacity
        tenant = str(uuid.uuid4())
        await pool.execute(
            "INSERT INTO tenants (tenant, name, step_quota_limit) VALUES ($1, 'q', 1)",
            uuid.UUID(tenant),
        )
        steps = [
            {"id": f"s{i}", "type": "transform.assign", "config": {"assign": {f"vars.v{i}": i}}}
            for i in range(2)
        ]
        run_id, handle = await start_steps(pool, client, tenant, steps)
        wait = await open_wait(pool, run_id, "quota")
        await pool.execute(
            "UPDATE tenants SET step_quota_limit = 5 WHERE tenant = $1", uuid.UUID(tenant)
        )
        await resume_quota(handle, str(wait["wait_id"]))
        await handle.result()
        await _save(client, handle.id, "quota")

        # cancellation while waiting inside a tryCatch
        tenant = str(uuid.uuid4())
        steps = [{"id": "tc", "type": "control.tryCatch",
                  "try": [{"id": "w", "type": "time.wait", "config": {"mode": "until",
                                                                     "until": (datetime.now(UTC) + timedelta(days=1)).isoformat()}}],
                  "catch": [{"id": "c", "type": "transform.assign", "config": {"assign": {"vars.c": True}}}]}]  # fmt: skip
        run_id, handle = await start_steps(pool, client, tenant, steps)
        await open_wait(pool, run_id, "time")
        await handle.cancel()
        with pytest.raises(Exception):  # noqa: B017 - cancelled
            await handle.result()
        await _save(client, handle.id, "cancel")

        # continue-as-new mid-item with a buffered signal carried over
        tenant = str(uuid.uuid4())
        steps = [
            {"id": "loop", "type": "control.forEach", "items": expr(f"[1..{CONTINUE_AS_NEW_EVERY // 2 + 5}]"),
             "body": [{"id": "a", "type": "transform.assign", "config": {"assign": {"local.x": expr("item")}}},
                      {"id": "b", "type": "transform.assign", "config": {"assign": {"vars.last": expr("local.x")}}}]},
            {"id": "late", "type": "event.wait", "config": {"eventName": "LATE"}},
        ]  # fmt: skip
        run_id, handle = await start_steps(pool, client, tenant, steps)
        await send_event(handle, "LATE", {"late": True})
        await handle.result()
        first = (await handle.describe()).raw_description.workflow_execution_info.first_run_id
        history = await client.get_workflow_handle(handle.id, run_id=first).fetch_history()
        last = history.events[-1]
        assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        await _save(client, handle.id, "continue_as_new_first", run_id=first, compress=True)
        second = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
        await _save(client, handle.id, "continue_as_new_second", run_id=second)
