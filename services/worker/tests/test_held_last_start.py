"""A data step that ends the run is written with the run's completion (`Bookkeeper.hold_start`):
one round trip per run fewer, the same rows, the same quota (SPEC §5.5), the same cancellation.
Runs started with the command set before it keep the old commands, and every history replays."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from stepwise_contract.names import RUN_COMMANDS
from stepwise_contract.payloads import RunResult
from stepwise_worker.workflow.patches import CURRENT, EARLIER_SETS
from temporalio.client import Client, WorkflowFailureError
from temporalio.worker import Worker

from .builders import assign, expr
from .history_markers import recorded, replay
from .runs import outcome, run_definition
from .signalling import open_wait, resume_quota, wait_for_row
from .test_quota_pause import set_limit

LOAD, RECORD, COMPLETE = "stepwise.load_run", "stepwise.record_steps", "stepwise.complete_run"
DONE_STEP = {"id": "done", "type": "state.set", "config": {"state": "finished"}}


async def _start(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    steps: list[Any],
    commands: str | None = RUN_COMMANDS,
) -> tuple[str, Any]:
    run_id, raw = await run_definition(
        pool, client, tenant_id, {"name": "held", "steps": steps}, commands=commands
    )
    return run_id, client.get_workflow_handle(raw.id, result_type=RunResult)


async def _steps(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT step_path, step_type, status, attempt, error_json, completed_at, duration_ms"
            " FROM workflow_run_steps WHERE run_id = $1 ORDER BY step_path",
            uuid.UUID(run_id),
        )
    )


async def _used(pool: asyncpg.Pool, tenant_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT coalesce(sum(used_count), 0) FROM workflow_step_usage_periods"
            " WHERE tenant = $1",
            uuid.UUID(tenant_id),
        )
    )


# A run named by an earlier set, or by none, takes today's commands on today's worker (it asks the
# current patch once); only its recorded history replays on the old ones (`histories/commands_*`).
@pytest.mark.parametrize(
    ("commands", "patches"),
    [(RUN_COMMANDS, []), (None, [CURRENT]), (EARLIER_SETS[0][0], [CURRENT])],
)
async def test_the_last_data_step_rides_in_the_run_completion(
    worker: Worker,
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant_id: str,
    commands: str | None,
    patches: list[str],
) -> None:
    run_id, handle = await _start(
        pool, temporal_client, tenant_id, [assign("a", x=1), DONE_STEP], commands
    )
    result = await handle.result()
    assert (result.vars, result.meta["state"]) == ({"x": 1}, "finished")
    history = await handle.fetch_history()
    assert recorded(history) == ([LOAD, RECORD, COMPLETE], patches)
    rows = await _steps(pool, run_id)
    assert [(r["step_path"], r["step_type"], r["status"], r["attempt"]) for r in rows] == [
        ("root.steps[0]", "transform.assign", "SUCCEEDED", 1),
        ("root.steps[1]", "state.set", "SUCCEEDED", 1),
    ]
    assert all(r["completed_at"] is not None and r["duration_ms"] >= 0 for r in rows)
    run = await pool.fetchrow(
        "SELECT status, node_path, result_json FROM workflow_runs WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert run is not None and (run["status"], run["node_path"]) == ("SUCCEEDED", None)
    assert run["result_json"]["meta"]["state"] == "finished"
    assert await _used(pool, tenant_id) == 2  # the held step took its unit
    await replay(history)


async def test_a_failing_last_data_step_fails_the_run_with_its_row(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [assign("a", x=1), assign("bad", y=expr("$undefinedFunction(vars.x)"))]
    run_id, handle = await _start(pool, temporal_client, tenant_id, steps)
    assert await outcome(handle) == "failed"
    rows = await _steps(pool, run_id)
    assert [(r["step_path"], r["status"]) for r in rows] == [
        ("root.steps[0]", "SUCCEEDED"),
        ("root.steps[1]", "FAILED"),
    ]
    assert rows[1]["error_json"]["nodePath"] == "root.steps[1]"
    run = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None and run["status"] == "FAILED"
    assert run["error_json"]["nodePath"] == "root.steps[1]"
    history = await handle.fetch_history()
    assert recorded(history)[0] == [LOAD, RECORD, COMPLETE]
    await replay(history)


async def test_no_quota_for_the_last_data_step_pauses_the_run_before_it_completes(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, 1)
    steps = [assign("s0", v0=0), assign("s1", v1=expr("vars.v0 + 1"))]
    run_id, handle = await _start(pool, temporal_client, tenant_id, steps)
    wait = await open_wait(pool, run_id, "quota")
    assert wait["step_path"] == "root.steps[1]"
    run = await wait_for_row(
        pool,
        "SELECT * FROM workflow_runs WHERE run_id = $1 AND status = 'WAITING'",
        uuid.UUID(run_id),
    )
    assert (run["node_path"], run["result_json"], run["completed_at"]) == (
        "root.steps[1]",
        None,
        None,
    )
    assert run["error_json"]["category"] == "QuotaExceeded"
    # the step before it is complete; the paused step has no row and took no unit
    rows = await _steps(pool, run_id)
    assert [(r["step_path"], r["status"]) for r in rows] == [("root.steps[0]", "SUCCEEDED")]
    assert await _used(pool, tenant_id) == 1

    await set_limit(pool, tenant_id, 5)
    await resume_quota(handle, str(wait["wait_id"]))
    result = await handle.result()
    assert result.vars == {"v0": 0, "v1": 1}
    rows = await _steps(pool, run_id)
    assert [(r["step_path"], r["status"]) for r in rows] == [
        ("root.steps[0]", "SUCCEEDED"),
        ("root.steps[1]", "SUCCEEDED"),
    ]
    final = await pool.fetchrow(
        "SELECT status, error_json, node_path FROM workflow_runs WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert final is not None and tuple(final) == ("SUCCEEDED", None, None)
    assert await _used(pool, tenant_id) == 2
    await replay(await handle.fetch_history())


# The cancellation's flush carries the held step: it writes the step's row (finished) when a unit
# is free by then, and nothing of it when none is.
@pytest.mark.parametrize("limit_at_cancel", [1, 5])
async def test_a_cancel_while_the_completion_waits_for_quota_cancels_the_run(
    worker: Worker,
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant_id: str,
    limit_at_cancel: int,
) -> None:
    await set_limit(pool, tenant_id, 1)
    steps = [assign("s0", v0=0), DONE_STEP]
    run_id, handle = await _start(pool, temporal_client, tenant_id, steps)
    wait = await open_wait(pool, run_id, "quota")
    await set_limit(pool, tenant_id, limit_at_cancel)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    run = await pool.fetchrow(
        "SELECT status, node_path FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None and run["status"] == "CANCELED"
    rows = [(r["step_path"], r["status"]) for r in await _steps(pool, run_id)]
    assert (
        await pool.fetchval(
            "SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait["wait_id"]
        )
    ) == "CANCELED"
    if limit_at_cancel == 1:
        # the finished step stays SUCCEEDED; the paused one never got a unit: no row
        assert rows == [("root.steps[0]", "SUCCEEDED")]
        assert await _used(pool, tenant_id) == 1
    else:
        # the paused step had run; with a unit free its row is written as it ended
        assert rows == [("root.steps[0]", "SUCCEEDED"), ("root.steps[1]", "SUCCEEDED")]
        assert await _used(pool, tenant_id) == 2
    await replay(await handle.fetch_history())
