"""Controls (SPEC §7): cancel (Temporal first, projections after; 409 and nothing changed when
Temporal refuses), replay (original unredacted input, or an edited one), quota resume."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from stepwise_cli.admin_operations import set_quota
from stepwise_contract.names import SIGNAL_QUOTA_RESUME, workflow_id_for
from stepwise_devkit.stack_client import eventually
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client


async def _history_events(temporal_client: Client, run_id: str) -> list[Any]:
    history = await temporal_client.get_workflow_handle(workflow_id_for(run_id)).fetch_history()
    return list(history.events)


async def _waiting_run(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> tuple[str, dict[str, uuid.UUID]]:
    """A launched run with a started step, an open event wait and a pending task (as the worker
    would project them while the run waits)."""
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    rid = uuid.UUID(run_id)
    ids = {"step": uuid.uuid4(), "wait": uuid.uuid4(), "task": uuid.uuid4(), "done": uuid.uuid4()}
    await pool.execute(
        "INSERT INTO workflow_run_steps (step_id, tenant, run_id, step_path, status, started_at)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'SUCCEEDED', now()), ($4, $2, $3, 'root.steps[1]',"
        " 'STARTED', now())",
        ids["done"], tenant.id, rid, ids["step"],
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key,"
        " event_name, status) VALUES ($1, $2, $3, 'root.steps[1]', 'event', 'K', 'E', 'WAITING')",
        ids["wait"], tenant.id, rid,
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title, status)"
        " VALUES ($1, $2, $3, 'root.steps[1]', 'approve', 'Approve', 'PENDING')",
        ids["task"], tenant.id, rid,
    )  # fmt: skip
    return run_id, ids


async def _state(pool: asyncpg.Pool, run_id: str, ids: dict[str, uuid.UUID]) -> dict[str, object]:
    return {
        "run": await pool.fetchval(
            "SELECT status FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
        ),
        "step": await pool.fetchval(
            "SELECT status FROM workflow_run_steps WHERE step_id = $1", ids["step"]
        ),
        "done": await pool.fetchval(
            "SELECT status FROM workflow_run_steps WHERE step_id = $1", ids["done"]
        ),
        "wait": await pool.fetchval(
            "SELECT status FROM workflow_run_waits WHERE wait_id = $1", ids["wait"]
        ),
        "task": await pool.fetchval(
            "SELECT status FROM workflow_tasks WHERE task_id = $1", ids["task"]
        ),
        "logs": await pool.fetchval(
            "SELECT count(*) FROM workflow_run_logs WHERE run_id = $1", uuid.UUID(run_id)
        ),
    }


async def test_cancel_waiting_run(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    run_id, ids = await _waiting_run(api, tenant, pool)
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": "ops"}, headers=tenant.headers()
    )
    assert resp.status == 200 and await resp.json() == {"ok": True}
    assert await _state(pool, run_id, ids) == {
        "run": "CANCELED", "step": "CANCELED", "done": "SUCCEEDED", "wait": "CANCELED",
        "task": "CANCELED", "logs": 2,
    }  # fmt: skip
    run = await pool.fetchrow(
        "SELECT completed_at, error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None
    assert run["completed_at"] is not None and run["error_json"]["reason"] == "ops"
    line = await pool.fetchrow(
        "SELECT level, message, context_json, source FROM workflow_run_logs"
        " WHERE run_id = $1 AND level = 'WARN'",
        uuid.UUID(run_id),
    )
    assert line is not None
    assert (line["message"], line["source"]) == ("Run canceled by operator", "api")
    assert line["context_json"]["reason"] == "ops"
    kinds = [e.event_type for e in await _history_events(temporal_client, run_id)]
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED in kinds
    # terminal now: a second cancel is 409
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": "again"}, headers=tenant.headers()
    )
    assert resp.status == 409 and (await resp.json())["code"] == "RUN_TERMINAL"


async def test_cancel_reason_must_have_three_characters(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    run_id, ids = await _waiting_run(api, tenant, pool)
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": " x "}, headers=tenant.headers()
    )
    assert resp.status == 400
    assert (await _state(pool, run_id, ids))["run"] == "RUNNING"


async def test_cancel_when_temporal_is_unreachable_changes_nothing(
    api: Any, app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    run_id, ids = await _waiting_run(api, tenant, pool)
    before = await _state(pool, run_id, ids)
    dead = await app_factory(TEMPORAL_ADDRESS="127.0.0.1:1")
    resp = await dead.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": "ops"}, headers=tenant.headers()
    )
    assert resp.status == 409
    problem = await resp.json()
    assert problem["code"] == "WORKFLOW_TEMPORAL_CANCEL_FAILED" and problem["runId"] == run_id
    assert await _state(pool, run_id, ids) == before
    assert before["run"] == "RUNNING" and before["wait"] == "WAITING"


async def test_cancel_of_a_never_started_run(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    """A row whose Temporal start never happened (crash between the two): cancel still works."""
    from stepwise_contract.platform.launch import NewRun, insert_run

    wf = await api.create_published(tenant.headers())
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id, tenant=tenant.id, workflow_id=uuid.UUID(wf), workflow_version=1,
            input_json={}, definition_hash="h",
        ),
    )  # fmt: skip
    resp = await api.post(
        f"/api/workflow-runs/{run_id}/cancel", json={"reason": "ops"}, headers=tenant.headers()
    )
    assert resp.status == 200
    assert await pool.fetchval("SELECT status FROM workflow_runs WHERE run_id = $1", run_id) == (
        "CANCELED"
    )


async def test_replay_uses_the_original_unredacted_input(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    original = {"apiKey": "live-key", "password": "hunter2", "n": 1}
    wf = await api.create_published(tenant.headers())
    await api.post(f"/api/workflow-definitions/{wf}/publish", json={}, headers=tenant.headers())
    source = (await api.launch(tenant.headers(), wf, original, workflowVersion=1))["runId"]
    shown = await (await api.get(f"/api/workflow-runs/{source}", headers=tenant.headers())).json()
    assert shown["input_json"] == {"apiKey": "[REDACTED]", "password": "[REDACTED]", "n": 1}

    resp = await api.post(
        f"/api/workflow-runs/{source}/replay", json={"reason": "rerun it"}, headers=tenant.headers()
    )
    assert resp.status == 201
    body = await resp.json()
    assert body["ok"] is True and body["runId"] != source
    # the Temporal run id is written just after the answer (StartRecorder)
    new = await eventually(
        lambda: pool.fetchrow(
            "SELECT * FROM workflow_runs WHERE run_id = $1 AND temporal_run_id IS NOT NULL",
            uuid.UUID(body["runId"]),
        ),
        "the replayed run's Temporal run id",
        interval_s=0.02,
    )
    assert new["input_json"] == original
    assert new["workflow_version"] == 1  # pinned, although version 2 is the latest
    meta = new["trigger_metadata_json"]
    assert {k: meta[k] for k in ("replayOfRunId", "reason")} == {
        "replayOfRunId": source,
        "reason": "rerun it",
    }
    # the key that asked, by id, name and role (never the key itself)
    key = await pool.fetchrow(
        "SELECT key_id, name FROM api_keys WHERE tenant = $1 AND role = 'admin'", tenant.id
    )
    assert key is not None
    assert meta["launchedBy"] == {
        "keyId": str(key["key_id"]), "keyName": key["name"], "role": "admin",
    }  # fmt: skip
    assert new["status"] == "RUNNING"
    new_logs = await pool.fetch(
        "SELECT message, context_json FROM workflow_run_logs WHERE run_id = $1", new["run_id"]
    )
    assert {r["message"] for r in new_logs} == {"Run started", "Run replayed from previous run"}
    old_logs = await pool.fetch(
        "SELECT message, context_json FROM workflow_run_logs WHERE run_id = $1",
        uuid.UUID(source),
    )
    created = [r["context_json"] for r in old_logs if r["message"] == "Run replay created"]
    assert created == [{"newRunId": body["runId"], "reason": "rerun it"}]


async def test_replay_with_an_edited_payload(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    wf = await api.create_published(tenant.headers())
    source = (await api.launch(tenant.headers(), wf, {"n": 1}))["runId"]
    for edited in ({"n": 2, "extra": True}, {}):
        resp = await api.post(
            f"/api/workflow-runs/{source}/replay",
            json={"reason": "edited", "payload": edited},
            headers=tenant.headers(),
        )
        assert resp.status == 201
        new_id = uuid.UUID((await resp.json())["runId"])
        stored = await pool.fetchval(
            "SELECT input_json FROM workflow_runs WHERE run_id = $1", new_id
        )
        assert stored == edited
    resp = await api.post(
        f"/api/workflow-runs/{source}/replay", json={"reason": "yes"}, headers=tenant.headers()
    )
    assert resp.status == 201
    resp = await api.post(
        f"/api/workflow-runs/{source}/replay", json={"reason": "x"}, headers=tenant.headers()
    )
    assert resp.status == 400


async def _quota_paused_run(api: Any, tenant: Any, pool: asyncpg.Pool) -> tuple[str, uuid.UUID]:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), wf))["runId"]
    wait_id = uuid.uuid4()
    now = datetime.now(UTC)
    await pool.execute(
        "UPDATE workflow_runs SET status = 'WAITING', node_path = 'root.steps[0]',"
        ' error_json = \'{"category": "QuotaExceeded"}\' WHERE run_id = $1',
        uuid.UUID(run_id),
    )
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, status,"
        " payload) VALUES ($1, $2, $3, 'root.steps[0]', 'quota', 'WAITING', $4)",
        wait_id, tenant.id, uuid.UUID(run_id), {"reason": "workflow_step_quota_exceeded"},
    )  # fmt: skip
    await pool.execute(
        "INSERT INTO workflow_step_usage_periods (tenant, period_start, period_end, effective_limit,"
        " used_count) VALUES ($1, $2, $3, 5, 5) ON CONFLICT DO NOTHING",
        tenant.id, now - timedelta(days=1), now + timedelta(days=29),
    )  # fmt: skip
    await set_quota(pool, tenant.id, 5)
    return run_id, wait_id


async def test_quota_resume(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    run_id, wait_id = await _quota_paused_run(api, tenant, pool)
    steps = await (
        await api.get(f"/api/workflow-runs/{run_id}/steps", headers=tenant.headers())
    ).json()
    assert steps["quotaPause"]["waitId"] == str(wait_id)
    assert steps["quotaPause"]["reason"] == "workflow_step_quota_exceeded"
    url = f"/api/workflow-runs/{run_id}/quota-resume"
    resp = await api.post(url, json={"reason": "please"}, headers=tenant.headers())
    assert resp.status == 409
    problem = await resp.json()
    assert problem["code"] == "QUOTA_EXHAUSTED"
    assert (problem["quota"]["usedCount"], problem["quota"]["limit"]) == (5, 5)
    assert (
        await pool.fetchval("SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait_id)
        == "WAITING"
    )

    await set_quota(pool, tenant.id, 10)
    resp = await api.post(url, headers=tenant.headers())
    assert resp.status == 200
    assert await resp.json() == {"ok": True, "resumed": True, "waitId": str(wait_id)}
    assert (
        await pool.fetchval("SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait_id)
        == "RESOLVED"
    )
    run = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert run is not None
    assert (run["status"], run["error_json"]) == ("RUNNING", None)
    signals = [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in await _history_events(temporal_client, run_id)
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert signals == [SIGNAL_QUOTA_RESUME]
    # no longer paused
    resp = await api.post(url, headers=tenant.headers())
    assert resp.status == 409 and (await resp.json())["code"] == "RUN_NOT_QUOTA_PAUSED"


async def test_quota_resume_with_temporal_down_changes_nothing(
    api: Any, app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    run_id, wait_id = await _quota_paused_run(api, tenant, pool)
    await set_quota(pool, tenant.id, None)
    dead = await app_factory(TEMPORAL_ADDRESS="127.0.0.1:1")
    resp = await dead.post(f"/api/workflow-runs/{run_id}/quota-resume", headers=tenant.headers())
    assert resp.status == 503
    assert (await resp.json())["code"] == "WORKFLOW_TEMPORAL_SIGNAL_FAILED"
    assert (
        await pool.fetchval("SELECT status FROM workflow_run_waits WHERE wait_id = $1", wait_id)
        == "WAITING"
    )
    assert (
        await pool.fetchval("SELECT status FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id))
        == "WAITING"
    )
