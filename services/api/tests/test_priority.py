"""Run priority and tenant fairness on launch: the definition's priority, an override within the
caller's role (only admin may go more urgent than the definition), replay, the Temporal start's
priority/fairness key/weight, and `priority` in run reads."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from stepwise_contract.enums import Role
from stepwise_contract.names import workflow_id_for
from temporalio.client import Client


async def _started_priority(client: Client, run_id: str) -> Any:
    description = await client.get_workflow_handle(workflow_id_for(run_id)).describe()
    return description.raw_description.workflow_execution_info.priority


async def test_definition_priority_and_tenant_weight_reach_temporal(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    await pool.execute("UPDATE tenants SET fairness_weight = 3 WHERE tenant = $1", tenant.id)
    wf = await api.create_published(tenant.headers(), api.definition(priority=2))
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf))["runId"]
    started = await _started_priority(temporal_client, run_id)
    assert started.priority_key == 2
    assert started.fairness_key == str(tenant.id)
    assert started.fairness_weight == pytest.approx(3.0)

    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers(Role.READ))
    assert (await resp.json())["priority"] == 2
    resp = await api.get(f"/api/workflow-runs?workflowId={wf}", headers=tenant.headers(Role.READ))
    assert [r["priority"] for r in (await resp.json())["runs"]] == [2]


async def test_a_definition_without_priority_runs_at_3(
    api: Any, tenant: Any, temporal_client: Client
) -> None:
    wf = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf))["runId"]
    started = await _started_priority(temporal_client, run_id)
    assert (started.priority_key, started.fairness_weight) == (3, pytest.approx(1.0))


async def test_override_within_role(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    wf = await api.create_published(tenant.headers(), api.definition(priority=3))
    # less urgent than the definition: any role that may launch
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf, priority=5))["runId"]
    assert (await _started_priority(temporal_client, run_id)).priority_key == 5
    # more urgent: refused for manage, nothing recorded
    before = await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE tenant = $1", tenant.id)
    out = await api.launch(tenant.headers(Role.MANAGE), wf, priority=1, expect=403)
    assert out["code"] == "PRIORITY_NOT_ALLOWED" and out["definitionPriority"] == 3
    after = await pool.fetchval("SELECT count(*) FROM workflow_runs WHERE tenant = $1", tenant.id)
    assert after == before
    # more urgent: allowed for admin
    run_id = (await api.launch(tenant.headers(Role.ADMIN), wf, priority=1))["runId"]
    assert (await _started_priority(temporal_client, run_id)).priority_key == 1
    row = await pool.fetchrow(
        "SELECT priority FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert row is not None
    assert row["priority"] == 1


async def test_a_tenant_cap_keeps_its_runs_from_jumping_every_queue(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    """Priority keys order tasks across tenants before fairness: a tenant whose every definition
    says `priority: 1` would go ahead of everyone. The operator's cap bounds it."""
    await pool.execute("UPDATE tenants SET most_urgent_priority = 3 WHERE tenant = $1", tenant.id)
    wf = await api.create_published(tenant.headers(), api.definition(priority=1))
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf))["runId"]
    assert (await _started_priority(temporal_client, run_id)).priority_key == 3
    # not even an admin override passes the cap; less urgent than the cap is untouched
    run_id = (await api.launch(tenant.headers(Role.ADMIN), wf, priority=2))["runId"]
    assert (await _started_priority(temporal_client, run_id)).priority_key == 3
    run_id = (await api.launch(tenant.headers(Role.MANAGE), wf, priority=4))["runId"]
    assert (await _started_priority(temporal_client, run_id)).priority_key == 4
    resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers(Role.READ))
    assert (await resp.json())["priority"] == 4


@pytest.mark.parametrize("bad", [0, 6, -1, 2**40, "1", 1.5, True, None, [1], {"p": 1}])
async def test_hostile_priorities_are_400(api: Any, tenant: Any, bad: Any) -> None:
    wf = await api.create_published(tenant.headers())
    if bad is None:  # explicit null = the definition's priority
        await api.launch(tenant.headers(), wf, priority=None)
        return
    out = await api.launch(tenant.headers(), wf, priority=bad, expect=400)
    assert out["code"] == "INVALID_BODY" and "priority" in out["detail"], out


@pytest.mark.parametrize("bad", [0, 6, "2", 2.5, True])
async def test_a_definition_priority_out_of_range_is_refused(
    api: Any, tenant: Any, bad: Any
) -> None:
    resp = await api.post(
        "/api/workflow-definitions",
        json={"definition": api.definition(priority=bad)},
        headers=tenant.headers(),
    )
    body = await resp.json()
    if resp.status == 201:  # drafts may be invalid; publishing is refused
        resp = await api.post(
            f"/api/workflow-definitions/{body['workflowId']}/publish",
            json={},
            headers=tenant.headers(),
        )
        body = await resp.json()
    assert resp.status in (400, 409, 422), body
    assert "priority" in str(body)


async def test_replay_keeps_the_priority_unless_given(
    api: Any, tenant: Any, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    wf = await api.create_published(tenant.headers(), api.definition(priority=4))
    source = (await api.launch(tenant.headers(Role.ADMIN), wf, priority=2))["runId"]
    resp = await api.post(
        f"/api/workflow-runs/{source}/replay", json={"reason": "again"}, headers=tenant.headers()
    )
    same = (await resp.json())["runId"]
    assert (await _started_priority(temporal_client, str(same))).priority_key == 2
    resp = await api.post(
        f"/api/workflow-runs/{source}/replay",
        json={"reason": "later", "priority": 5},
        headers=tenant.headers(),
    )
    later = (await resp.json())["runId"]
    assert (await _started_priority(temporal_client, str(later))).priority_key == 5
