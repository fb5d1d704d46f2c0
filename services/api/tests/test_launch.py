"""`POST /api/workflow-runs`: versions, payload schema, idempotency, pause, concurrency, rate
limit across replicas, and a failed Temporal start (SPEC §7)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import asyncpg
from stepwise_cli.admin_operations import set_rate_limit
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.enums import Role
from stepwise_contract.names import workflow_id_for
from stepwise_contract.payloads import ActionFacts, RunInput
from stepwise_devkit.stack_client import eventually
from temporalio.client import Client


async def test_launch_records_row_and_starts_temporal(
    api: Any, tenant: Any, temporal_client: Client
) -> None:
    wf = await api.create_published(tenant.headers())
    out = await api.launch(tenant.headers(Role.MANAGE), wf, {"a": 1})
    assert out["status"] == "RUNNING" and out["workflowVersion"] == 1
    # the Temporal run id is written just after the answer (StartRecorder)
    row = await eventually(
        lambda: tenant.pool.fetchrow(
            "SELECT * FROM workflow_runs WHERE run_id = $1 AND temporal_run_id IS NOT NULL",
            uuid.UUID(out["runId"]),
        ),
        "the run's Temporal run id",
        interval_s=0.02,
    )
    assert row["engine"] == "temporal" and row["input_json"] == {"a": 1}
    assert row["temporal_workflow_id"] == workflow_id_for(out["runId"])
    assert row["root_run_id"] == row["run_id"] and row["definition_hash"]
    handle = temporal_client.get_workflow_handle(workflow_id_for(out["runId"]))
    description = await handle.describe()
    assert description.run_id == row["temporal_run_id"]
    # the start carries the run, so the workflow does not load it (PreloadedRun)
    started = (await handle.fetch_history()).events[0]
    run_input = DATA_CONVERTER.payload_converter.from_payload(
        started.workflow_execution_started_event_attributes.input.payloads[0], RunInput
    )
    preloaded = run_input.preloaded
    assert preloaded is not None
    stored = await tenant.pool.fetchval(
        "SELECT definition_json FROM workflow_definition_versions"
        " WHERE workflow_id = $1 AND version = 1",
        row["workflow_id"],
    )
    assert (preloaded.definition, preloaded.definition_hash, preloaded.payload) == (
        stored,
        row["definition_hash"],
        {"a": 1},
    )
    assert preloaded.actions == {"core.echo@1": ActionFacts(local=True, timeout_s=30.0)}
    logs = await tenant.pool.fetch(
        "SELECT message, source FROM workflow_run_logs WHERE run_id = $1", row["run_id"]
    )
    assert [(r["message"], r["source"]) for r in logs] == [("Run started", "api")]


async def test_pinned_and_latest_versions(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    await api.post(f"/api/workflow-definitions/{wf}/publish", json={}, headers=tenant.headers())
    assert (await api.launch(tenant.headers(), wf))["workflowVersion"] == 2
    assert (await api.launch(tenant.headers(), wf, workflowVersion=1))["workflowVersion"] == 1
    resp = await api.post(
        "/api/workflow-runs",
        json={"workflowId": wf, "workflowVersion": 9},
        headers=tenant.headers(),
    )
    assert resp.status == 404 and (await resp.json())["code"] == "VERSION_NOT_FOUND"
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": str(uuid.uuid4())}, headers=tenant.headers()
    )
    assert resp.status == 404 and (await resp.json())["code"] == "WORKFLOW_NOT_FOUND"


async def test_no_published_version_and_paused_are_409(api: Any, tenant: Any) -> None:
    resp = await api.post(
        "/api/workflow-definitions", json={"definition": api.definition()}, headers=tenant.headers()
    )
    draft_only = (await resp.json())["workflowId"]
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": draft_only}, headers=tenant.headers()
    )
    assert resp.status == 409 and (await resp.json())["code"] == "NO_PUBLISHED_VERSION"
    wf = await api.create_published(tenant.headers())
    await api.patch(
        f"/api/workflow-definitions/{wf}", json={"isPaused": True}, headers=tenant.headers()
    )
    resp = await api.post("/api/workflow-runs", json={"workflowId": wf}, headers=tenant.headers())
    assert resp.status == 409 and (await resp.json())["code"] == "WORKFLOW_PAUSED"


async def test_payload_schema_400_lists_issues(api: Any, tenant: Any) -> None:
    ref = f"payload.L{uuid.uuid4().hex[:6]}.v1"
    await api.put(
        f"/api/workflow/schemas/{ref}",
        json={"type": "object", "required": ["ticketId"],
              "properties": {"ticketId": {"type": "string"}, "n": {"type": "integer"}}},
        headers=tenant.headers(),
    )  # fmt: skip
    wf = await api.create_published(tenant.headers(), api.definition(payloadSchemaRef=ref))
    resp = await api.post(
        "/api/workflow-runs",
        json={"workflowId": wf, "payload": {"n": "x"}},
        headers=tenant.headers(),
    )
    assert resp.status == 400
    problem = await resp.json()
    assert problem["code"] == "PAYLOAD_INVALID"
    assert {e["path"] for e in problem["errors"]} == {"/", "/n"}
    assert (await api.launch(tenant.headers(), wf, {"ticketId": "T-1"}))["status"] == "RUNNING"
    count = await tenant.pool.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(wf)
    )
    assert count == 1


async def test_idempotency_key(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    key = f"idem-{uuid.uuid4()}"
    headers = {**tenant.headers(), "Idempotency-Key": key}
    first = await api.launch(headers, wf, {"a": 1})
    again = await api.launch(headers, wf, {"a": 1}, expect=200)
    assert again["runId"] == first["runId"]
    resp = await api.post(
        "/api/workflow-runs", json={"workflowId": wf, "payload": {"a": 2}}, headers=headers
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "IDEMPOTENCY_KEY_REUSED"
    # concurrent repeats create one run
    key2 = f"idem-{uuid.uuid4()}"
    results = await asyncio.gather(
        *(
            api.post(
                "/api/workflow-runs",
                json={"workflowId": wf, "payload": {"b": 1}},
                headers={**tenant.headers(), "Idempotency-Key": key2},
            )
            for _ in range(5)
        )
    )
    bodies = [await r.json() for r in results]
    assert sorted(r.status for r in results) == [200, 200, 200, 200, 201]
    assert len({b["runId"] for b in bodies}) == 1
    count = await tenant.pool.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE tenant = $1 AND idempotency_key = $2",
        tenant.id,
        key2,
    )
    assert count == 1


async def test_concurrency_limit_is_429(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    await api.patch(
        f"/api/workflow-definitions/{wf}", json={"concurrencyLimit": 2}, headers=tenant.headers()
    )
    results = await asyncio.gather(
        *(
            api.post("/api/workflow-runs", json={"workflowId": wf}, headers=tenant.headers())
            for _ in range(4)
        )
    )
    assert sorted(r.status for r in results) == [201, 201, 429, 429]
    codes = {(await r.json()).get("code") for r in results if r.status == 429}
    assert codes == {"CONCURRENCY_LIMIT"}


async def _start_of_a_fresh_minute() -> None:
    # The limit is per calendar minute; do not straddle a boundary.
    seconds = time.time() % 60
    if seconds > 50:
        await asyncio.sleep(60 - seconds + 0.5)


async def test_rate_limit_holds_across_two_api_instances(
    api: Any, app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    second = await app_factory()
    await set_rate_limit(pool, tenant.id, 3)
    wf = await api.create_published(tenant.headers())
    await _start_of_a_fresh_minute()
    statuses = []
    for i in range(6):
        client = api.client if i % 2 == 0 else second
        resp = await client.post(
            "/api/workflow-runs", json={"workflowId": wf}, headers=tenant.headers()
        )
        statuses.append(resp.status)
        if resp.status == 429:
            problem = await resp.json()
            assert problem["code"] == "RATE_LIMITED"
            assert int(resp.headers["Retry-After"]) >= 1
    assert statuses == [201, 201, 201, 429, 429, 429]
    count = await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE tenant = $1", tenant.id)
    assert count == 3


async def test_failed_temporal_start_fails_the_run_visibly(
    app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool, api: Any
) -> None:
    wf = await api.create_published(tenant.headers())
    dead = await app_factory(TEMPORAL_ADDRESS="127.0.0.1:1")
    resp = await dead.post("/api/workflow-runs", json={"workflowId": wf}, headers=tenant.headers())
    assert resp.status == 503
    problem = await resp.json()
    assert problem["code"] == "WORKFLOW_LAUNCH_FAILED"
    row = await pool.fetchrow(
        "SELECT status, error_json FROM workflow_runs WHERE run_id = $1",
        uuid.UUID(problem["runId"]),
    )
    assert row is not None
    assert row["status"] == "FAILED"
    assert row["error_json"]["stage"] == "launch"
    # readiness names the missing dependency
    ready = await dead.get("/readyz")
    assert ready.status == 503
    assert (await ready.json())["checks"]["temporal"] != "ok"


async def test_launch_by_key_and_404_names_what_it_looked_for(
    api: Any, tenant: Any, other_tenant: Any
) -> None:
    key = f"orders-{uuid.uuid4().hex[:6]}"
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": api.definition(), "key": key},
        headers=tenant.headers(),
    )
    wf = (await resp.json())["workflowId"]
    await api.post(f"/api/workflow-definitions/{wf}/publish", json={}, headers=tenant.headers())
    out = await api.launch(tenant.headers(Role.MANAGE), key, {"a": 1})
    row = await tenant.pool.fetchrow(
        "SELECT workflow_id FROM workflow_runs WHERE run_id = $1", uuid.UUID(out["runId"])
    )
    assert str(row["workflow_id"]) == wf
    # the idempotency hash covers the resolved id: a repeat by id is the same request
    repeat = {**tenant.headers(), "Idempotency-Key": f"idem-{uuid.uuid4()}"}
    by_key = await api.launch(repeat, key, {"a": 2})
    assert (await api.launch(repeat, wf, {"a": 2}, expect=200))["runId"] == by_key["runId"]
    # the id still works; another tenant's key is unknown; a near miss is named in the 404
    assert (await api.launch(tenant.headers(), wf))["workflowVersion"] == 1
    for headers, ref, looked_for in (
        (other_tenant.headers(), key, "key"),
        (tenant.headers(), key.upper(), "key"),
        (tenant.headers(), str(uuid.uuid4()), "id or key"),
        (tenant.headers(), "", "key"),
    ):
        resp = await api.post("/api/workflow-runs", json={"workflowId": ref}, headers=headers)
        body = await resp.json()
        assert resp.status == 404 and body["code"] == "WORKFLOW_NOT_FOUND", body
        assert f"no workflow with {looked_for} {ref!r}" in body["detail"]
