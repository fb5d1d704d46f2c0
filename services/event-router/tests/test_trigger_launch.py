"""A triggered run whose Temporal start fails is never FAILED by the blip and never stranded: the
event is redelivered with backoff and a later delivery starts the run (the same row, once). The
router runs against the real Temporal dev server, first through a client of a namespace that does
not exist (every start refused), then through the real one."""

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


async def _unstarted(bus: Any, tenant_id: str) -> Any:
    async def check() -> Any:
        runs = await bus.runs(tenant_id)
        return runs[0] if runs else None

    run = await bus.eventually(check, what="the triggered run's row")
    assert run["status"] == "RUNNING" and run["temporal_run_id"] is None
    return run


async def test_a_refused_start_is_retried_by_redelivery_not_failed(
    start_router: Any, refusing_client: Client, bus: Any, tenant_id: str
) -> None:
    workflow_id = await bus.add_workflow(tenant_id, "START_REFUSED")
    # the refusing router naks with a 3 s backoff: the next delivery reaches the router below
    async with start_router(client=refusing_client, STEPWISE_ROUTER_BACKOFF_S="3"):
        event_id = await bus.publish(tenant_id, "START_REFUSED", {"n": 1})
        run = await _unstarted(bus, tenant_id)
        assert run["trigger_fire_key"] == names.trigger_fire_key(event_id, str(workflow_id))
        row = await bus.event_row(tenant_id, event_id)
        assert row is None or row["processed_at"] is None, "not finished: it will be redelivered"
    # Temporal is back (a router with a working client): the redelivery starts the same row
    async with start_router() as router:
        row = await bus.processed(tenant_id, event_id, within=60)
        assert router.sample("stepwise_router_trigger_failures_total") == 0
    [again] = await bus.runs(tenant_id)
    assert again["run_id"] == run["run_id"] and again["temporal_run_id"] is not None
    assert again["status"] in ("RUNNING", "WAITING", "SUCCEEDED")
    assert row["started_run_ids"] == [run["run_id"]] and row["error_message"] is None


async def test_an_interrupted_start_is_finished_by_the_next_delivery(
    start_router: Any, bus: Any, tenant_id: str
) -> None:
    """A delivery died between the row and the start; the next delivery starts that row."""
    workflow_id = await bus.add_workflow(tenant_id, "RESUME_STARTED")
    event_id = str(uuid.uuid4())
    run_id = await bus.insert_unstarted_run(tenant_id, workflow_id, event_id)
    async with start_router():
        await bus.publish(tenant_id, "RESUME_STARTED", {}, event_id=event_id)
        row = await bus.processed(tenant_id, event_id)
    [run] = await bus.runs(tenant_id)
    assert run["run_id"] == run_id and run["temporal_run_id"] is not None
    assert row["started_run_ids"] == [run_id]
