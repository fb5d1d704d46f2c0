"""`POST /api/workflow/events` publishes to JetStream (the router's only input); `?wait=` reports
the router's outcome; event reads carry a routing status (SPEC §7, §8)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext
from stepwise_contract.enums import Role
from stepwise_contract.envelope import decode_envelope
from stepwise_contract.names import EVENTS_STREAM, MSG_ID_HEADER, event_subject


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


async def test_publish_puts_the_envelope_on_the_stream(
    api: Any, tenant: Any, js: JetStreamContext
) -> None:
    name = f"TICKET_{uuid.uuid4().hex[:6].upper()}"
    resp = await api.post(
        "/api/workflow/events",
        json={"eventName": name, "correlationKey": "T-1", "payload": {"ticketId": "T-1"},
              "payloadSchemaRef": "payload.Ticket.v1"},
        headers=tenant.headers(Role.MANAGE),
    )  # fmt: skip
    assert resp.status == 202
    body = await resp.json()
    assert body["status"] == "accepted"
    subject = event_subject(str(tenant.id), name)
    msg = await js.get_last_msg(EVENTS_STREAM, subject)
    assert msg.headers is not None and msg.data is not None
    assert msg.headers[MSG_ID_HEADER] == body["eventId"]
    envelope = decode_envelope(msg.data)
    assert (envelope.event_id, envelope.event_type, envelope.name) == (body["eventId"], name, name)
    assert envelope.tenant == str(tenant.id) and envelope.workflow_correlation_key == "T-1"
    assert envelope.payload == {"ticketId": "T-1"} and envelope.timestamp
    assert envelope.payload_schema_ref == "payload.Ticket.v1"


async def test_same_event_id_is_stored_once(api: Any, tenant: Any, js: JetStreamContext) -> None:
    name = f"DUP_{uuid.uuid4().hex[:6].upper()}"
    event_id = str(uuid.uuid4())
    seqs = []
    for _ in range(2):
        resp = await api.post(
            "/api/workflow/events",
            json={"eventName": name, "eventId": event_id},
            headers=tenant.headers(),
        )
        assert resp.status == 202 and (await resp.json())["eventId"] == event_id
        seqs.append((await js.get_last_msg(EVENTS_STREAM, event_subject(str(tenant.id), name))).seq)
    assert seqs[0] == seqs[1]


async def test_invalid_events_are_400(api: Any, tenant: Any) -> None:
    for body in (
        {"eventName": "has space"},
        {"eventName": "wild.*"},
        {"eventName": "a..b"},
        {"eventName": ""},
        {"eventName": "OK", "eventId": "not-a-uuid"},
        {"eventName": "OK", "payload": [1]},
    ):
        resp = await api.post("/api/workflow/events", json=body, headers=tenant.headers())
        assert resp.status == 400, body
    resp = await api.post(
        "/api/workflow/events?wait=31", json={"eventName": "OK"}, headers=tenant.headers()
    )
    assert resp.status == 400


async def _route(
    pool: asyncpg.Pool,
    tenant_id: uuid.UUID,
    event_id: str,
    *,
    delay: float,
    signaled: Sequence[uuid.UUID] = (),
    started: Sequence[uuid.UUID] = (),
    error: str | None = None,
) -> None:
    """Stand in for the router: record the event as processed after `delay` seconds."""
    await asyncio.sleep(delay)
    await pool.execute(
        "INSERT INTO workflow_runtime_events (tenant, event_id, event_name, correlation_key,"
        " correlation_keys, processed_at, signaled_run_ids, started_run_ids, matched_run_id,"
        " error_message) VALUES ($1, $2, 'X', 'K', '{K}', now(), $3, $4, $5, $6)"
        " ON CONFLICT (tenant, event_id) DO UPDATE SET processed_at = now(),"
        " signaled_run_ids = $3, started_run_ids = $4, matched_run_id = $5, error_message = $6",
        tenant_id, event_id, list(signaled), list(started),
        next(iter([*signaled, *started]), None), error,
    )  # fmt: skip


async def test_wait_reports_the_routing_result(api: Any, tenant: Any, pool: asyncpg.Pool) -> None:
    run_a, run_b, started = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"signaled": [run_a], "started": [started]}, "resumed", str(run_a)),
        ({"signaled": [run_a, run_b]}, "resumed", None),
        ({}, "no_wait", None),
        ({"error": "Failed to launch"}, "error", None),
    ]
    for routed, status, run_id in cases:
        event_id = str(uuid.uuid4())
        router = asyncio.create_task(_route(pool, tenant.id, event_id, delay=0.3, **routed))
        resp = await api.post(
            "/api/workflow/events?wait=5",
            json={"eventName": "X", "eventId": event_id},
            headers=tenant.headers(),
        )
        await router
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert body["eventId"] == event_id and body["status"] == status
        assert body["runId"] == run_id
        assert body["signaledRuns"] == [str(r) for r in routed.get("signaled", [])]
        assert body["startedRuns"] == [str(r) for r in routed.get("started", [])]
        if status == "error":
            assert body["warning"] == "Failed to launch"


async def test_wait_that_times_out_answers_202(api: Any, tenant: Any) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    resp = await api.post(
        "/api/workflow/events?wait=1", json={"eventName": "NOBODY_ROUTES"}, headers=tenant.headers()
    )
    assert resp.status == 202
    body = await resp.json()
    assert body["status"] == "accepted" and "1 s" in body["warning"]
    assert 0.9 <= loop.time() - started < 5


async def test_event_reads_and_statuses(
    api: Any, tenant: Any, other_tenant: Any, pool: asyncpg.Pool
) -> None:
    rows: dict[str, dict[str, Any]] = {
        "pending": {"processed_at": None},
        "matched": {"processed_at": "now", "started": [uuid.uuid4()]},
        "unmatched": {"processed_at": "now"},
        "error": {"processed_at": "now", "error": "boom"},
    }
    ids = {}
    for status, row in rows.items():
        event_id = str(uuid.uuid4())
        ids[status] = event_id
        await pool.execute(
            "INSERT INTO workflow_runtime_events (tenant, event_id, event_name, correlation_key,"
            " payload, processed_at, started_run_ids, error_message)"
            " VALUES ($1, $2, $3, 'K1', $4, CASE WHEN $5 THEN now() END, $6, $7)",
            tenant.id, event_id, f"EV_{status}", {"password": "p", "ok": 1},
            row["processed_at"] is not None, row.get("started", []), row.get("error"),
        )  # fmt: skip
    headers = tenant.headers(Role.READ)
    body = await (await api.get("/api/workflow/events", headers=headers)).json()
    assert {e["event_id"]: e["status"] for e in body["events"]} == {v: k for k, v in ids.items()}
    assert all(e["payload"] == {"password": "[REDACTED]", "ok": 1} for e in body["events"])
    for status, event_id in ids.items():
        filtered = await (
            await api.get(f"/api/workflow/events?status={status}", headers=headers)
        ).json()
        assert [e["event_id"] for e in filtered["events"]] == [event_id]
        one = await (await api.get(f"/api/workflow/events/{event_id}", headers=headers)).json()
        assert one["status"] == status and one["event_id"] == event_id
    by_name = await (
        await api.get("/api/workflow/events?eventName=EV_error&correlationKey=K1", headers=headers)
    ).json()
    assert [e["event_id"] for e in by_name["events"]] == [ids["error"]]
    paged = await (await api.get("/api/workflow/events?limit=3", headers=headers)).json()
    rest = await (
        await api.get(f"/api/workflow/events?limit=3&cursor={paged['nextCursor']}", headers=headers)
    ).json()
    assert len(paged["events"]) == 3 and len(rest["events"]) == 1 and rest["nextCursor"] is None
    summary = await (await api.get("/api/workflow/events/summary", headers=headers)).json()
    assert summary == {"total": 4, "matched": 1, "unmatched": 1, "error": 1, "pending": 1}
    assert (
        await api.get(f"/api/workflow/events/{ids['matched']}", headers=other_tenant.headers())
    ).status == 404
    theirs = await (
        await api.get("/api/workflow/events/summary", headers=other_tenant.headers())
    ).json()
    assert theirs["total"] == 0
    raw = await pool.fetchval(
        "SELECT payload FROM workflow_runtime_events WHERE tenant = $1 AND event_id = $2",
        tenant.id, ids["error"],
    )  # fmt: skip
    assert raw == {"password": "p", "ok": 1}  # stored unredacted
