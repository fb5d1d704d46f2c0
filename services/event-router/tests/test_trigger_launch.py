"""A triggered run whose Temporal start fails is FAILED at once (`stage: "launch"`), as an API launch
is, never a `RUNNING` row that nothing executes. The router runs against the real Temporal dev
server through a client of a namespace that does not exist, so every start is refused."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import pytest
from stepwise_contract import names
from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.temporal import connect_temporal
from temporalio.client import Client

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def refusing_client(temporal_address: str, pool: asyncpg.Pool) -> Client:
    namespace = f"stepwise-missing-{uuid.uuid4().hex[:8]}"
    return await connect_temporal(temporal_address, namespace, claims=PostgresClaimStore(pool))


def _failed_at_launch(run: Any) -> None:
    assert run["status"] == "FAILED" and run["temporal_run_id"] is None
    assert run["completed_at"] is not None
    error = run["error_json"]
    assert error["stage"] == "launch" and error["category"] == "TransientError"
    assert "Temporal start failed" in error["message"]


async def test_a_triggered_run_whose_start_fails_is_failed_and_reported(
    start_router: Any, refusing_client: Client, bus: Any, tenant_id: str
) -> None:
    workflow_id = await bus.add_workflow(tenant_id, "START_REFUSED")
    async with start_router(client=refusing_client) as router:
        event_id = await bus.publish(tenant_id, "START_REFUSED", {"n": 1})
        row = await bus.processed(tenant_id, event_id)
        assert router.sample("stepwise_router_trigger_failures_total") == 1
        assert router.sample("stepwise_router_runs_started_total") == 0
        assert router.sample("stepwise_router_dlq_total", {"reason": "MAX_DELIVER"}) == 0

        [run] = await bus.runs(tenant_id)
        _failed_at_launch(run)
        assert run["trigger_fire_key"] == names.trigger_fire_key(event_id, str(workflow_id))
        assert row["started_run_ids"] == []
        assert str(workflow_id) in row["error_message"]
        assert "FAILED" in row["error_message"]
        logs = await bus.pool.fetch(
            "SELECT message, source FROM workflow_run_logs WHERE run_id = $1", run["run_id"]
        )
        assert [(r["message"], r["source"]) for r in logs] == [("Run started", "router")]

        # redelivered: the failure is reported again, nothing is started or duplicated
        again = await bus.redeliver(tenant_id, "START_REFUSED", {"n": 1}, event_id)
        assert str(workflow_id) in again["error_message"]
        assert [r["run_id"] for r in await bus.runs(tenant_id)] == [run["run_id"]]


async def test_an_interrupted_start_that_fails_on_redelivery_is_failed(
    start_router: Any, refusing_client: Client, bus: Any, tenant_id: str
) -> None:
    """A delivery died between the row and the start; the next delivery's start fails."""
    workflow_id = await bus.add_workflow(tenant_id, "RESUME_REFUSED")
    event_id = str(uuid.uuid4())
    run_id = await bus.insert_unstarted_run(tenant_id, workflow_id, event_id)
    async with start_router(client=refusing_client):
        await bus.publish(tenant_id, "RESUME_REFUSED", {}, event_id=event_id)
        row = await bus.processed(tenant_id, event_id)
    [run] = await bus.runs(tenant_id)
    assert run["run_id"] == run_id
    _failed_at_launch(run)
    assert row["started_run_ids"] == [] and str(workflow_id) in row["error_message"]
