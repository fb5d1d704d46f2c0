"""What an open run waits on (`waiting_on` in run reads and lists, the `waitingOn` filter), the
`workflow` filter by id, key or name, who launched a run (`trigger_metadata_json.launchedBy`), the
definitions list's 24-hour counts, and the dead-letter read."""

from __future__ import annotations

import argparse
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import nats
import pytest
from nats.js.errors import NotFoundError
from stepwise_cli.api_client import ApiClient, ApiConfig
from stepwise_cli.runs_command import runs_list, runs_show
from stepwise_contract import names
from stepwise_contract.enums import Role
from stepwise_contract.platform.launch import NewRun, insert_run
from stepwise_router.stream import dlq_stream_config


async def _run(
    pool: asyncpg.Pool, tenant_id: uuid.UUID, wf: str, *, status: str = "RUNNING"
) -> uuid.UUID:
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id, tenant=tenant_id, workflow_id=uuid.UUID(wf), workflow_version=1,
            input_json={}, definition_hash="h",
        ),
    )  # fmt: skip
    await pool.execute("UPDATE workflow_runs SET status = $2 WHERE run_id = $1", run_id, status)
    return run_id


async def _wait(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    run_id: uuid.UUID,
    wait_type: str,
    *,
    status: str = "WAITING",
    ago_s: float = 0,
    **cols: Any,
) -> str:
    wait_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key,"
        " event_name, timeout_at, status, payload, created_at)"
        " VALUES ($1, $2, $3, 'root.steps[0]', $4, $5, $6, $7, $8, $9,"
        " now() - make_interval(secs => $10))",
        wait_id, tenant_id, run_id, wait_type, cols.get("key"), cols.get("event_name"),
        cols.get("timeout_at"), status, cols.get("payload"), ago_s,
    )  # fmt: skip
    return str(wait_id)


async def _get(api: Any, tenant: Any, url: str, status: int = 200) -> Any:
    resp = await api.get(url, headers=tenant.headers(Role.READ))
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_waiting_on_in_reads_lists_and_the_filter(
    api: Any, tenant: Any, other_tenant: Any, pool: asyncpg.Pool
) -> None:
    wf = await api.create_published(tenant.headers())
    on_event = await _run(pool, tenant.id, wf)
    # an older resolved wait, then the open one: the open one is what the run waits on
    await _wait(pool, tenant.id, on_event, "time", status="RESOLVED", ago_s=30)
    await _wait(pool, tenant.id, on_event, "event", key="order-7", event_name="order.paid")
    until = datetime.now(UTC) + timedelta(hours=1)
    on_timer = await _run(pool, tenant.id, wf)
    await _wait(pool, tenant.id, on_timer, "time", timeout_at=until)
    on_human = await _run(pool, tenant.id, wf)
    task_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title,"
        " status) VALUES ($1, $2, $3, 'root.steps[0]', 'approval', 'Approve the refund',"
        " 'PENDING')",
        task_id, tenant.id, on_human,
    )  # fmt: skip
    await _wait(pool, tenant.id, on_human, "human", key=str(task_id))
    on_quota = await _run(pool, tenant.id, wf, status="WAITING")
    await _wait(pool, tenant.id, on_quota, "quota", payload={"usedCount": 3})
    busy = await _run(pool, tenant.id, wf)
    # an ended run's stale open wait is not "waiting"
    ended = await _run(pool, tenant.id, wf, status="FAILED")
    await _wait(pool, tenant.id, ended, "event", key="k", event_name="late")

    run = await _get(api, tenant, f"/api/workflow-runs/{on_event}")
    assert run["waiting_on"] == {"type": "event", "event_name": "order.paid", "key": "order-7"}
    run = await _get(api, tenant, f"/api/workflow-runs/{on_timer}")
    assert run["waiting_on"]["type"] == "time"
    assert datetime.fromisoformat(run["waiting_on"]["until"]) == until
    run = await _get(api, tenant, f"/api/workflow-runs/{on_human}")
    assert run["waiting_on"] == {
        "type": "human", "key": str(task_id), "task_title": "Approve the refund",
    }  # fmt: skip
    assert (await _get(api, tenant, f"/api/workflow-runs/{on_quota}"))["waiting_on"] == {
        "type": "quota"
    }
    assert (await _get(api, tenant, f"/api/workflow-runs/{busy}"))["waiting_on"] is None
    assert (await _get(api, tenant, f"/api/workflow-runs/{ended}"))["waiting_on"] is None

    listed = {r["run_id"]: r for r in (await _get(api, tenant, "/api/workflow-runs"))["runs"]}
    assert listed[str(on_event)]["waiting_on"]["event_name"] == "order.paid"
    assert listed[str(on_human)]["waiting_on"]["task_title"] == "Approve the refund"
    assert listed[str(busy)]["waiting_on"] is None

    async def ids(query: str) -> set[str]:
        return {
            r["run_id"] for r in (await _get(api, tenant, f"/api/workflow-runs?{query}"))["runs"]
        }

    assert await ids("waitingOn=event") == {str(on_event)}
    assert await ids("waitingOn=event&waitingOn=human") == {str(on_event), str(on_human)}
    assert await ids("waitingOn=time,quota") == {str(on_timer), str(on_quota)}
    assert await ids("waitingOn=human&status=FAILED") == set()
    problem = await _get(api, tenant, "/api/workflow-runs?waitingOn=nothing", 400)
    assert problem["code"] == "INVALID_PARAMETER"
    # another tenant sees none of it
    resp = await api.get("/api/workflow-runs?waitingOn=event", headers=other_tenant.headers())
    assert (await resp.json())["runs"] == []


async def test_workflow_filter_takes_an_id_a_key_or_a_name(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": api.definition("billing-sync"), "key": "billing"},
        headers=tenant.headers(),
    )
    wf = (await resp.json())["workflowId"]
    other = await api.create_published(tenant.headers(), api.definition("other"))
    mine = await _run(pool, tenant.id, wf)
    await _run(pool, tenant.id, other)

    for ref in (wf, wf.upper(), "billing", "billing-sync"):
        runs = (await _get(api, tenant, f"/api/workflow-runs?workflow={ref}"))["runs"]
        assert [r["run_id"] for r in runs] == [str(mine)], ref
    for ref in ("billing%25", "bill", "' OR 1=1 --", "x" * 200):
        assert (await _get(api, tenant, f"/api/workflow-runs?workflow={ref}"))["runs"] == []
    await _get(api, tenant, f"/api/workflow-runs?workflow={'x' * 201}", 400)


async def test_an_api_launch_records_the_key_that_asked(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf, {}))["runId"]
    run = await _get(api, tenant, f"/api/workflow-runs/{run_id}")
    key = await pool.fetchrow(
        "SELECT key_id, name FROM api_keys WHERE tenant = $1 AND role = 'manage'", tenant.id
    )
    assert key is not None
    assert run["trigger_type"] is None
    assert run["trigger_metadata_json"] == {
        "launchedBy": {"keyId": str(key["key_id"]), "keyName": key["name"], "role": "manage"}
    }
    assert tenant.keys[Role.MANAGE] not in json.dumps(run)


async def test_definitions_list_counts_the_last_24_hours(
    api: Any, tenant: Any, pool: asyncpg.Pool
) -> None:
    wf = await api.create_published(tenant.headers())
    idle = await api.create_published(tenant.headers())
    for status in ("SUCCEEDED", "FAILED", "FAILED", "RUNNING"):
        await _run(pool, tenant.id, wf, status=status)
    old = await _run(pool, tenant.id, wf, status="FAILED")
    await pool.execute(
        "UPDATE workflow_runs SET started_at = now() - interval '25 hours' WHERE run_id = $1", old
    )
    listed = {
        d["workflow_id"]: d
        for d in (await _get(api, tenant, "/api/workflow-definitions"))["definitions"]
    }
    assert (listed[wf]["runs_24h"], listed[wf]["failed_24h"]) == (4, 2)
    assert (listed[idle]["runs_24h"], listed[idle]["failed_24h"]) == (0, 0)


async def test_dead_letters_of_the_tenant_newest_first_and_redacted(
    api: Any, tenant: Any, other_tenant: Any, nats_url: str
) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(names.DLQ_STREAM)
        except NotFoundError:
            await js.add_stream(dlq_stream_config())

        async def dead(tenant_id: uuid.UUID, body: bytes, reason: str) -> None:
            await js.publish(
                names.dlq_subject(str(tenant_id)),
                body,
                headers={
                    names.DLQ_REASON_HEADER: reason,
                    names.DLQ_DETAIL_HEADER: f"detail of {reason}",
                    names.DLQ_SUBJECT_HEADER: f"workflow.events.{tenant_id}.order.paid",
                },
            )

        envelope = {
            "event_id": "evt-1", "event_type": "order.paid", "tenant": str(tenant.id),
            "payload": {"password": "hunter2", "amount": 3},
        }  # fmt: skip
        await dead(tenant.id, json.dumps(envelope).encode(), "INVALID_ENVELOPE")
        await dead(tenant.id, b"\xff{not json password=hunter2", "INVALID_JSON")
        await dead(other_tenant.id, b"{}", "INVALID_ENVELOPE")
    finally:
        await nc.close()

    letters = (await _get(api, tenant, "/api/workflow/events/dead-letters"))["deadLetters"]
    assert [d["reason"] for d in letters] == ["INVALID_JSON", "INVALID_ENVELOPE"]
    raw, parsed = letters
    assert raw["bodyIsJson"] is False and raw["body"] is None and raw["bodyBytes"] == 27
    assert "hunter2" not in json.dumps(letters)
    assert parsed["body"]["payload"] == {"password": "[REDACTED]", "amount": 3}
    assert parsed["eventId"] == "evt-1" and parsed["eventName"] == "order.paid"
    assert parsed["detail"] == "detail of INVALID_ENVELOPE"
    assert parsed["originalSubject"] == f"workflow.events.{tenant.id}.order.paid"
    one = await _get(api, tenant, "/api/workflow/events/dead-letters?limit=1")
    assert [d["reason"] for d in one["deadLetters"]] == ["INVALID_JSON"]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    assert (await _get(api, tenant, f"/api/workflow/events/dead-letters?from={later}")) == {
        "deadLetters": []
    }
    resp = await api.get("/api/workflow/events/dead-letters", headers=other_tenant.headers())
    assert [d["reason"] for d in (await resp.json())["deadLetters"]] == ["INVALID_ENVELOPE"]
    await _get(api, tenant, "/api/workflow/events/dead-letters?limit=201", 400)


async def test_the_cli_lists_and_shows_what_a_run_waits_on(
    api: Any, tenant: Any, pool: asyncpg.Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    wf = await api.create_published(tenant.headers())
    on_event = await _run(pool, tenant.id, wf)
    await _wait(pool, tenant.id, on_event, "event", key="order-7", event_name="order.paid")
    busy = await _run(pool, tenant.id, wf)
    config = ApiConfig(url=str(api.client.make_url("")).rstrip("/"), key=tenant.keys[Role.READ])
    listing = {"limit": 50, "status": None, "workflow": None, "cursor": None, "json": False}
    async with ApiClient(config) as cli:
        await runs_list(argparse.Namespace(**listing, waiting_on=None), cli)
        table = capsys.readouterr().out
        await runs_list(argparse.Namespace(**listing, waiting_on=["event"]), cli)
        only_waiting = capsys.readouterr().out
        await runs_show(argparse.Namespace(run_id=str(on_event), json=False), cli)
        shown = capsys.readouterr().out
    # (the in-process API's request log lines share stdout)
    [header] = [line for line in table.splitlines() if line.startswith("RUN ID")]
    assert header.split()[5:7] == ["WAITING", "ON"]
    [row] = [line for line in table.splitlines() if str(on_event) in line]
    assert "event order.paid key=order-7" in row
    assert str(busy) in table and str(busy) not in only_waiting and str(on_event) in only_waiting
    assert "  waiting on event order.paid key=order-7" in shown
    assert "  trigger    api" in shown
