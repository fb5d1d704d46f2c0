"""Group commit against real NATS JetStream, Postgres and Temporal: a burst fetched in one pull is
recorded, looked up and finished with batched statements, and every message keeps its own outcome —
a poison message among good ones fails alone and ends in the DLQ alone."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
import pytest
from stepwise_contract import names

pytestmark = pytest.mark.asyncio(loop_scope="session")

GOOD = 24
BATCH_ENV = {"STEPWISE_ROUTER_CONCURRENCY": "64", "STEPWISE_ROUTER_BATCH": "64"}


async def test_a_poison_message_in_a_batch_fails_alone_and_the_rest_routes_once(
    start_router: Any, bus: Any, recorder: Any, tenant_id: str, temporal_client: Any
) -> None:
    # The stream is shared: events earlier tests published with no router running are routed
    # first, by a router of their own, so the counters below count this test's events only.
    async with start_router(**BATCH_ENV):
        await bus.consumer_settled(await bus.stream_last_seq(), within=60)
    tenant = uuid.UUID(tenant_id)
    suspended = str(uuid.uuid4())
    await bus.pool.execute(
        "INSERT INTO tenants (tenant, name, suspended) VALUES ($1, 'suspended', true)",
        uuid.UUID(suspended),
    )
    runs = [uuid.uuid4() for _ in range(GOOD)]
    for n, run_id in enumerate(runs):
        await recorder.start(run_id)
        await bus.insert_wait(tenant_id, run_id, "BATCHED", f"B-{n}")
    workflow_id = await bus.add_workflow(tenant_id, "BATCHED_TRIGGER")

    # Published before the router starts, so its first pull fetches them all together.
    subject = names.event_subject(tenant_id, "BATCHED")
    good: list[str] = []
    for n in range(GOOD):
        good.append(await bus.publish(tenant_id, "BATCHED", {"ticketId": f"B-{n}"}))
        if n == 5:
            # Postgres refuses \u0000 in jsonb: this one fails every batch it is in
            poison = await bus.publish(tenant_id, "BATCHED", {"ticketId": "B-0", "t": "a\u0000b"})
        if n == 10:
            await bus.publish_raw(subject, b"\x00not json{")
        if n == 15:
            # the same event again under another Nats-Msg-Id: recorded once, in a later batch
            await bus.publish(
                tenant_id,
                "BATCHED",
                {"ticketId": "B-15"},
                event_id=good[15],
                msg_id=f"again-{good[15]}",
            )
    unmatched = await bus.publish(tenant_id, "BATCHED", {"ticketId": "nobody-waits"})
    triggering = await bus.publish(tenant_id, "BATCHED_TRIGGER", {"ticketId": "T-1"})
    elsewhere = await bus.publish(suspended, "BATCHED", {"ticketId": "B-1"})
    last_seq = bus.last_seq

    async with start_router(**BATCH_ENV) as router:
        await bus.consumer_settled(last_seq, within=60)
        letters = await bus.dead_letters(tenant_id, 2)
        samples = {
            outcome: router.sample("stepwise_router_events_total", {"outcome": outcome})
            for outcome in ("routed", "duplicate", "suspended", "dlq", "retry", "error")
        }
        record_count = router.sample("stepwise_router_batch_size_count", {"step": "record"})
        record_sum = router.sample("stepwise_router_batch_size_sum", {"step": "record"})

    # only the poison and the garbage are dead letters, each once
    by_reason = {m.headers[names.DLQ_REASON_HEADER]: m for m in letters}
    assert sorted(by_reason) == ["INVALID_JSON", "MAX_DELIVER"], [m.headers for m in letters]
    assert msgspec.json.decode(by_reason["MAX_DELIVER"].data)["event_id"] == poison
    assert by_reason["INVALID_JSON"].data == b"\x00not json{"
    # only the poison was retried (delivery 1 and 2 of max 3); nothing else failed with it
    assert samples["retry"] == 2
    assert samples["dlq"] == 2
    # GOOD + unmatched + triggering (the duplicate may be routed again or be a duplicate, below)
    assert samples["routed"] + samples["duplicate"] == GOOD + 2 + 1
    assert samples["suspended"] == 1
    assert samples["error"] == 0
    # the burst really shared statements
    assert record_sum >= GOOD + 3 and record_count < record_sum

    for n, (run_id, event_id) in enumerate(zip(runs, good, strict=True)):
        row = await bus.event_row(tenant_id, event_id)
        assert row is not None and row["processed_at"] is not None
        assert row["signaled_run_ids"] == [run_id] and row["matched_run_id"] == run_id
        received = [e.event_id for e in (await recorder.received(run_id)).events]
        if n == 15:
            # a concurrent second copy may signal again; the worker consumes an event id once
            assert set(received) == {event_id}
        else:
            assert received == [event_id]
    assert await bus.event_row(tenant_id, poison) is None
    assert not await bus.pool.fetchval(
        "SELECT count(*) FROM workflow_recent_events WHERE tenant = $1 AND event_id = $2",
        tenant, poison,
    )  # fmt: skip
    no_match = await bus.event_row(tenant_id, unmatched)
    assert no_match["processed_at"] is not None and no_match["signaled_run_ids"] == []
    started = await bus.event_row(tenant_id, triggering)
    assert len(started["started_run_ids"]) == 1 and started["error_message"] is None
    [run] = await bus.pool.fetch(
        "SELECT run_id FROM workflow_runs WHERE tenant = $1 AND workflow_id = $2",
        tenant, workflow_id,
    )  # fmt: skip
    assert started["started_run_ids"] == [run["run_id"]]
    held = await bus.event_row(suspended, elsewhere)
    assert held["processed_at"] is not None and "suspended" in held["error_message"]
    rows = await bus.pool.fetchval(
        "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1", tenant
    )
    assert rows == GOOD + 2
    # the run with key B-1 of the suspended tenant's namesake was not signalled by that event
    assert [e.event_id for e in (await recorder.received(runs[1])).events] == [good[1]]
    for run_id in runs:
        await recorder.terminate(run_id)
    handle = temporal_client.get_workflow_handle(names.workflow_id_for(str(run["run_id"])))
    await handle.terminate("test over")
