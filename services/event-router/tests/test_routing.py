"""The router's per-message steps (SPEC §8) against real NATS JetStream, Postgres and Temporal, with
one in-process router on the shared durable consumer."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from stepwise_contract import names
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.payloads import RunInput

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(scope="module")
async def router(start_router: Any, recorder: Any) -> AsyncIterator[Any]:
    async with start_router() as running:
        yield running


async def test_garbage_and_invalid_envelopes_go_to_the_dlq_and_a_valid_event_still_routes(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    other_tenant = str(uuid.uuid4())
    subject = names.event_subject(tenant_id, "GARBAGE")
    await bus.publish_raw(subject, b"\x00not json{")
    await bus.publish_raw(subject, b'{"event_type": "X", "tenant": "' + tenant_id.encode() + b'"}')
    await bus.publish_raw(subject, b'{"event_id": "not-a-uuid", "event_type": "X", "tenant": "t"}')
    await bus.publish_raw(subject, b"[1, 2, 3]")
    # a well-formed envelope published under another tenant's subject
    mismatched = msgspec.json.encode(
        {"event_id": str(uuid.uuid4()), "event_type": "X", "tenant": other_tenant}
    )
    await bus.publish_raw(subject, mismatched)

    run_id = uuid.uuid4()
    await recorder.start(run_id)
    await bus.insert_wait(tenant_id, run_id, "AFTER_GARBAGE", "k-1")
    event_id = await bus.publish(tenant_id, "AFTER_GARBAGE", {"ticketId": "k-1"})

    row = await bus.processed(tenant_id, event_id)
    assert row["signaled_run_ids"] == [run_id]
    received = await recorder.received(run_id)
    assert [e.event_id for e in received.events] == [event_id]

    letters = await bus.dead_letters(tenant_id, 4)
    reasons = [m.headers[names.DLQ_REASON_HEADER] for m in letters]
    assert reasons == ["INVALID_JSON", "INVALID_ENVELOPE", "INVALID_ENVELOPE", "INVALID_ENVELOPE"]
    assert letters[0].data == b"\x00not json{"  # the original bytes
    assert all(m.headers[names.DLQ_SUBJECT_HEADER] == subject for m in letters)
    assert all(m.headers[names.DLQ_DETAIL_HEADER] for m in letters)
    # the mismatched envelope is filed under its own (readable) tenant
    [mismatch] = await bus.dead_letters(other_tenant, 1)
    assert mismatch.headers[names.DLQ_REASON_HEADER] == "TENANT_SUBJECT_MISMATCH"
    assert mismatch.data == mismatched
    assert router.sample("stepwise_router_dlq_total", {"reason": "INVALID_ENVELOPE"}) >= 3
    # nothing of the garbage was recorded as an event
    count = await bus.pool.fetchval(
        "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1", uuid.UUID(tenant_id)
    )
    assert count == 1


async def test_same_event_twice_is_processed_once(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    run_id = uuid.uuid4()
    await recorder.start(run_id)
    await bus.insert_wait(tenant_id, run_id, "TWICE", None)
    event_id = str(uuid.uuid4())
    # same Nats-Msg-Id: JetStream's duplicate window stores it once
    await bus.publish(tenant_id, "TWICE", {"n": 1}, event_id=event_id)
    await bus.publish(tenant_id, "TWICE", {"n": 1}, event_id=event_id)
    assert bus.last_duplicate
    await bus.processed(tenant_id, event_id)
    # a different Nats-Msg-Id, as after the duplicate window: the router's ledger dedupes
    before = router.sample("stepwise_router_events_total", {"outcome": "duplicate"})
    await bus.publish(tenant_id, "TWICE", {"n": 1}, event_id=event_id, msg_id="later")
    assert not bus.last_duplicate
    await bus.consumer_settled(bus.last_seq)

    received = await recorder.received(run_id)
    assert [e.event_id for e in received.events] == [event_id]
    assert router.sample("stepwise_router_events_total", {"outcome": "duplicate"}) == before + 1
    rows = await bus.pool.fetchval(
        "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1", uuid.UUID(tenant_id)
    )
    assert rows == 1


async def test_a_redelivery_after_a_crash_between_signal_and_finish_keeps_the_match(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    """The first delivery signalled a run, the worker consumed the event (wait RESOLVED, stamped
    with the event id), and the router died before finishing the event row. The redelivery finds
    no WAITING wait, yet the row must still name the run it resumed — and signal nothing twice."""
    tenant = uuid.UUID(tenant_id)
    resumed, still_waiting, other_event = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for run_id in (resumed, still_waiting, other_event):
        await recorder.start(run_id)
    event_id = str(uuid.uuid4())
    first = await bus.insert_wait(tenant_id, resumed, "CRASHED", "K-1", status="RESOLVED")
    await bus.pool.execute(
        "UPDATE workflow_run_waits SET payload = $2 WHERE wait_id = $1",
        first, {"matchedEventId": event_id},
    )  # fmt: skip
    # a wait another event resolved is not this event's match
    other = await bus.insert_wait(tenant_id, other_event, "CRASHED", "K-1", status="RESOLVED")
    await bus.pool.execute(
        "UPDATE workflow_run_waits SET payload = $2 WHERE wait_id = $1",
        other, {"matchedEventId": str(uuid.uuid4())},
    )  # fmt: skip
    await bus.insert_wait(tenant_id, still_waiting, "CRASHED", "K-1")
    # the crashed delivery's row: recorded, never finished
    await bus.pool.execute(
        "INSERT INTO workflow_runtime_events (tenant, event_id, event_name, event_type,"
        " correlation_key, correlation_keys, payload) VALUES ($1, $2, 'CRASHED', 'CRASHED', 'K-1',"
        " ARRAY['K-1'], '{}')",
        tenant, event_id,
    )  # fmt: skip

    await bus.publish(tenant_id, "CRASHED", {"ticketId": "K-1"}, event_id=event_id)
    row = await bus.processed(tenant_id, event_id)

    assert row["matched_run_id"] == resumed and row["matched_wait_id"] == first
    assert row["signaled_run_ids"] == [resumed, still_waiting]
    assert [e.event_id for e in (await recorder.received(still_waiting)).events] == [event_id]
    # the run that consumed it on the first delivery is not signalled again
    assert (await recorder.received(resumed)).events == []


async def test_an_event_resumes_every_matching_wait_and_no_other(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    names_ = ["primary", "second", "keyless", "human", "other_key", "other_name", "time_wait",
              "resolved", "other_tenant"]  # fmt: skip
    runs = {name: uuid.uuid4() for name in names_}
    for run_id in runs.values():
        await recorder.start(run_id)
    # ticketId and clientId are both derived keys (default `*` paths)
    w_primary = await bus.insert_wait(tenant_id, runs["primary"], "ORDER", "T-1")
    await bus.insert_wait(tenant_id, runs["second"], "ORDER", "C-9")
    await bus.insert_wait(tenant_id, runs["keyless"], "ORDER", None)
    await bus.insert_wait(tenant_id, runs["human"], "ORDER", "T-1", wait_type="human")
    await bus.insert_wait(tenant_id, runs["other_key"], "ORDER", "T-2")
    await bus.insert_wait(tenant_id, runs["other_name"], "INVOICE", "T-1")
    await bus.insert_wait(tenant_id, runs["time_wait"], "ORDER", "T-1", wait_type="time")
    await bus.insert_wait(tenant_id, runs["resolved"], "ORDER", "T-1", status="RESOLVED")
    await bus.insert_wait(str(uuid.uuid4()), runs["other_tenant"], "ORDER", "T-1")
    # a wait whose run already closed: skipped, not an error
    await bus.insert_wait(tenant_id, uuid.uuid4(), "ORDER", "T-1")

    payload = {"ticketId": "T-1", "clientId": "C-9", "amount": 5}
    event_id = await bus.publish(tenant_id, "ORDER", payload)
    row = await bus.processed(tenant_id, event_id)

    assert row["correlation_key"] == "T-1"
    assert row["correlation_keys"] == ["T-1", "C-9"]
    assert row["error_message"] is None
    expected = {runs[n] for n in ("primary", "second", "keyless", "human")}
    assert set(row["signaled_run_ids"]) == expected
    assert row["matched_run_id"] == runs["primary"]
    assert row["matched_wait_id"] == w_primary

    got = {name: await recorder.received(run_id) for name, run_id in runs.items()}
    assert [(e.event_id, e.correlation_key) for e in got["primary"].events] == [(event_id, "T-1")]
    assert [(e.event_id, e.correlation_key) for e in got["second"].events] == [(event_id, "C-9")]
    assert [(e.event_id, e.correlation_key) for e in got["keyless"].events] == [(event_id, "T-1")]
    assert got["primary"].events[0].payload == payload
    assert got["primary"].events[0].event_name == "ORDER"
    assert [(t.task_id, t.event_name) for t in got["human"].tasks] == [("T-1", "ORDER")]
    assert got["human"].events == []
    for name in ("other_key", "other_name", "time_wait", "resolved", "other_tenant"):
        assert got[name].events == [] and got[name].tasks == [], name


async def test_explicit_correlation_key_replaces_derived_keys(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    explicit, derived = uuid.uuid4(), uuid.uuid4()
    for run_id in (explicit, derived):
        await recorder.start(run_id)
    await bus.insert_wait(tenant_id, explicit, "PING", "X-1")
    await bus.insert_wait(tenant_id, derived, "PING", "T-1")
    event_id = await bus.publish(tenant_id, "PING", {"ticketId": "T-1"}, key=" X-1 ")
    row = await bus.processed(tenant_id, event_id)
    assert row["correlation_keys"] == ["X-1"]
    assert row["signaled_run_ids"] == [explicit]


async def test_early_event_is_in_the_buffer_for_a_wait_registered_after_it(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    """SPEC §5.4 from the router's side, 50 times with the wait registered at random moments
    around the publish: for every run, either the router signalled it (it saw the wait row) or the
    worker's check — wait row committed, THEN read the buffer — finds the event. Zero misses."""
    tenant = uuid.UUID(tenant_id)

    async def worker_registers_wait(run_id: uuid.UUID, key: str, started_at: Any) -> bool:
        await asyncio.sleep(random.uniform(0, 0.02))
        await bus.insert_wait(tenant_id, run_id, "RACE", key)  # committed first
        found = await bus.pool.fetchval(
            "SELECT count(*) FROM workflow_recent_events WHERE tenant = $1 AND event_name = 'RACE'"
            " AND correlation_key = $2 AND received_at >= $3",
            tenant, key, started_at,
        )  # fmt: skip
        return bool(found)

    outcomes = []
    for i in range(50):
        run_id = uuid.uuid4()
        await recorder.start(run_id)
        started_at = await bus.pool.fetchval("SELECT now()")
        key = f"race-{i}"
        publish = bus.publish(tenant_id, "RACE", {"ticketId": key})
        event_id, from_buffer = await asyncio.gather(
            publish, worker_registers_wait(run_id, key, started_at)
        )
        row = await bus.processed(tenant_id, event_id)
        signalled = run_id in row["signaled_run_ids"]
        if signalled:
            received = await recorder.received(run_id)
            assert [e.event_id for e in received.events] == [event_id]
        outcomes.append((signalled, from_buffer))

    misses = [i for i, (signalled, buffered) in enumerate(outcomes) if not (signalled or buffered)]
    assert misses == []
    # the buffer row exists for every event, with the event's key
    rows = await bus.pool.fetchval(
        "SELECT count(DISTINCT event_id) FROM workflow_recent_events WHERE tenant = $1", tenant
    )
    assert rows == 50


async def test_event_without_keys_is_buffered_under_the_empty_key(
    router: Any, bus: Any, tenant_id: str
) -> None:
    event_id = await bus.publish(tenant_id, "NO_KEYS", {"nothing": "here"})
    row = await bus.processed(tenant_id, event_id)
    assert row["correlation_key"] is None and row["correlation_keys"] == []
    keys = await bus.pool.fetch(
        "SELECT correlation_key FROM workflow_recent_events WHERE tenant = $1 AND event_id = $2",
        uuid.UUID(tenant_id),
        event_id,
    )
    assert [r["correlation_key"] for r in keys] == [""]


async def test_suspended_tenant_event_is_recorded_as_an_error_and_not_routed(
    router: Any, bus: Any, recorder: Any, tenant_id: str
) -> None:
    await bus.pool.execute(
        "INSERT INTO tenants (tenant, name, suspended) VALUES ($1, 'suspended', true)",
        uuid.UUID(tenant_id),
    )
    run_id = uuid.uuid4()
    await recorder.start(run_id)
    await bus.insert_wait(tenant_id, run_id, "SUSPENDED", None)
    event_id = await bus.publish(tenant_id, "SUSPENDED", {"ticketId": "T"})
    row = await bus.processed(tenant_id, event_id)
    assert "suspended" in row["error_message"]
    assert row["signaled_run_ids"] == []
    assert (await recorder.received(run_id)).events == []


async def test_a_message_that_keeps_failing_goes_to_the_dlq_after_max_deliver(
    router: Any, bus: Any, tenant_id: str
) -> None:
    # Postgres refuses \u0000 in jsonb: every delivery fails until the last (max deliver 3 here)
    poison = await bus.publish(tenant_id, "POISON", {"text": "a\u0000b"})
    after = await bus.publish(tenant_id, "AFTER_POISON", {})
    await bus.processed(tenant_id, after)
    [letter] = await bus.dead_letters(tenant_id, 1)
    assert letter.headers[names.DLQ_REASON_HEADER] == "MAX_DELIVER"
    assert (
        "Untranslatable" in letter.headers[names.DLQ_DETAIL_HEADER]
        or "\\u0000" in (letter.headers[names.DLQ_DETAIL_HEADER])
    )
    assert msgspec.json.decode(letter.data)["event_id"] == poison
    assert router.sample("stepwise_router_events_total", {"outcome": "retry"}) >= 2


# -- triggers -----------------------------------------------------------------------------------


async def test_trigger_starts_a_run_once_even_when_redelivered(
    router: Any, bus: Any, tenant_id: str, temporal_client: Any
) -> None:
    workflow_id = await bus.add_workflow(
        tenant_id,
        "TICKET_CREATED",
        mapping={
            "ticket.id": {"$expr": "event.payload.ticketId"},
            "key": {"$expr": "event.correlationKey"},
        },
        schema={"type": "object", "required": ["ticket"]},
    )
    event_id = await bus.publish(tenant_id, "TICKET_CREATED", {"ticketId": "T-7"})
    row = await bus.processed(tenant_id, event_id)
    [run] = await bus.runs(tenant_id)
    assert row["started_run_ids"] == [run["run_id"]]
    assert row["matched_run_id"] == run["run_id"]
    assert run["input_json"] == {"ticket": {"id": "T-7"}, "key": "T-7"}
    assert run["trigger_fire_key"] == names.trigger_fire_key(event_id, str(workflow_id))
    assert run["trigger_type"] == "event" and run["event_type"] == "TICKET_CREATED"
    assert run["trigger_metadata_json"]["eventId"] == event_id
    assert run["status"] == "RUNNING" and run["temporal_run_id"] is not None
    handle = temporal_client.get_workflow_handle(names.workflow_id_for(str(run["run_id"])))
    description = await handle.describe()
    assert description.run_id == run["temporal_run_id"]
    # the tenant's fair share at the definition's priority (absent: 3; no tenant row: weight 1)
    started = description.raw_description.workflow_execution_info.priority
    assert (started.priority_key, started.fairness_key) == (3, tenant_id)
    assert started.fairness_weight == 1.0 and run["priority"] == 3
    # the start carries the run (its definition and input), so the workflow need not load it
    history = await handle.fetch_history()
    run_input = DATA_CONVERTER.payload_converter.from_payload(
        history.events[0].workflow_execution_started_event_attributes.input.payloads[0], RunInput
    )
    assert run_input.preloaded is not None
    assert run_input.preloaded.payload == run["input_json"]
    assert run_input.preloaded.definition_hash == "hash"
    assert run_input.preloaded.definition["trigger"]["eventName"] == "TICKET_CREATED"

    # a redelivery of the same event after a crash before step 8 (row recorded, not processed)
    await bus.pool.execute(
        "UPDATE workflow_runtime_events SET processed_at = NULL, started_run_ids = '{}'"
        " WHERE tenant = $1 AND event_id = $2",
        uuid.UUID(tenant_id), event_id,
    )  # fmt: skip
    await bus.publish(
        tenant_id, "TICKET_CREATED", {"ticketId": "T-7"}, event_id=event_id, msg_id="redelivery"
    )
    again = await bus.processed(tenant_id, event_id)
    assert again["started_run_ids"] == [run["run_id"]]
    assert [r["run_id"] for r in await bus.runs(tenant_id)] == [run["run_id"]]
    await handle.terminate("test over")


async def test_triggered_runs_carry_the_definition_priority_and_tenant_weight(
    router: Any, bus: Any, tenant_id: str, temporal_client: Any
) -> None:
    await bus.pool.execute(
        "INSERT INTO tenants (tenant, name, fairness_weight, most_urgent_priority)"
        " VALUES ($1, 'weighted', 2.5, 2)",
        uuid.UUID(tenant_id),
    )
    # the definition asks for 1; the tenant is capped at 2
    await bus.add_workflow(tenant_id, "URGENT_THING", priority=1)
    event_id = await bus.publish(tenant_id, "URGENT_THING", {})
    await bus.processed(tenant_id, event_id)
    [run] = await bus.runs(tenant_id)
    assert run["priority"] == 2
    handle = temporal_client.get_workflow_handle(names.workflow_id_for(str(run["run_id"])))
    started = (await handle.describe()).raw_description.workflow_execution_info.priority
    assert (started.priority_key, started.fairness_key) == (2, tenant_id)
    assert started.fairness_weight == 2.5
    await handle.terminate("test over")


async def test_a_run_whose_start_was_interrupted_is_started_on_redelivery(
    router: Any, bus: Any, tenant_id: str, temporal_client: Any
) -> None:
    """A delivery died between the run row and the Temporal start: the next one starts that run."""
    workflow_id = await bus.add_workflow(tenant_id, "INTERRUPTED")
    event_id = str(uuid.uuid4())
    run_id = await bus.insert_unstarted_run(tenant_id, workflow_id, event_id, priority=5)
    await bus.publish(tenant_id, "INTERRUPTED", {}, event_id=event_id)
    row = await bus.processed(tenant_id, event_id)
    assert row["started_run_ids"] == [run_id]
    [run] = await bus.runs(tenant_id)
    assert run["temporal_run_id"] is not None
    handle = temporal_client.get_workflow_handle(names.workflow_id_for(str(run_id)))
    # started at the priority its row recorded
    started = (await handle.describe()).raw_description.workflow_execution_info.priority
    assert (started.priority_key, started.fairness_key) == (5, tenant_id)
    await handle.terminate("over")


async def test_an_invalid_mapping_for_one_workflow_does_not_stop_the_others(
    router: Any, bus: Any, tenant_id: str, temporal_client: Any
) -> None:
    bad_mapping = await bus.add_workflow(tenant_id, "DEAL_WON", mapping={"at": {"$expr": "$now()"}})
    bad_payload = await bus.add_workflow(
        tenant_id,
        "DEAL_WON",
        mapping={"amount": {"$expr": "event.payload.amount"}},
        schema={"type": "object", "properties": {"amount": {"type": "number"}}},
    )
    good = await bus.add_workflow(
        tenant_id, "DEAL_WON", mapping={"deal": {"$expr": "event.payload.dealId"}}
    )
    await bus.add_workflow(tenant_id, "DEAL_WON", paused=True)
    await bus.add_workflow(tenant_id, "DEAL_WON", status="draft")
    await bus.add_workflow(tenant_id, "DEAL_LOST")

    event_id = await bus.publish(tenant_id, "DEAL_WON", {"dealId": "D-1", "amount": "lots"})
    row = await bus.processed(tenant_id, event_id)
    runs = {r["workflow_id"]: r for r in await bus.runs(tenant_id)}
    assert set(runs) == {bad_mapping, bad_payload, good}

    assert row["started_run_ids"] == [runs[good]["run_id"]]
    assert runs[good]["status"] == "RUNNING" and runs[good]["input_json"] == {"deal": "D-1"}
    for failed in (bad_mapping, bad_payload):
        run = runs[failed]
        assert run["status"] == "FAILED" and run["temporal_run_id"] is None
        error = run["error_json"]
        assert error["category"] == "ValidationError" and error["stage"] == "launch"
        assert error["errors"] and error["message"]
        assert str(failed) in row["error_message"]
    assert "$now" in runs[bad_mapping]["error_json"]["errors"][0]["message"]
    assert runs[bad_payload]["error_json"]["errors"][0]["path"] == "/amount"
    assert router.sample("stepwise_router_trigger_failures_total") >= 2

    # redelivered: the failed runs stay failed (not started, not duplicated), the good one reused
    again = await bus.redeliver(
        tenant_id, "DEAL_WON", {"dealId": "D-1", "amount": "lots"}, event_id
    )
    assert again["started_run_ids"] == [runs[good]["run_id"]]
    assert str(bad_mapping) in again["error_message"]
    assert len(await bus.runs(tenant_id)) == 3
    await temporal_client.get_workflow_handle(
        names.workflow_id_for(str(runs[good]["run_id"]))
    ).terminate("over")
