"""Hostile input at every API boundary: each case answers an exact problem+json status and code,
the service answers `/healthz` right after, and nothing was stored."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import nats
import pytest
from aiohttp import web
from nats.js.errors import NotFoundError
from stepwise_api.app import create_app
from stepwise_api.parser_errors import ProblemAppRunner
from stepwise_api.settings import Settings
from stepwise_contract.enums import Role
from stepwise_contract.json_limits import MAX_JSON_DEPTH
from stepwise_contract.names import EVENTS_STREAM, event_subject

TABLES = (
    "workflow_payload_schemas",
    "workflow_definitions",
    "workflow_definition_versions",
    "workflow_runs",
    "workflow_run_logs",
    "workflow_tasks",
)
INVALID_UTF8 = b'{"reason": "\xc3\x28 not utf-8", "payload": {}}'


def nested(depth: int, leaf: Any = 1) -> Any:
    """`depth` objects inside each other (`{"a": {"a": ... leaf}}`)."""
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_array_text(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def stored(tenant: Any) -> dict[str, int]:
    counts = {}
    for table in TABLES:
        counts[table] = await tenant.pool.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant = $1", tenant.id
        )
    return counts


async def problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/problem+json", text
    body: dict[str, Any] = await resp.json()
    assert (body["status"], body["code"]) == (status, code)
    assert "Traceback" not in text
    return body


async def healthy(api: Any) -> None:
    # generous: the probe that found these holes saw /healthz stop answering for minutes
    async with asyncio.timeout(5):
        resp = await api.get("/healthz")
    assert resp.status == 200


@pytest.fixture
def hostile(api: Any, tenant: Any) -> Callable[..., Awaitable[Any]]:
    """`await hostile(method, path, status, code, json=... | data=...)`: sends it as the admin,
    checks the problem answer, that `/healthz` answers right after and that nothing was stored."""

    async def send(method: str, path: str, status: int, code: str, **kwargs: Any) -> Any:
        before = await stored(tenant)
        headers = {**tenant.headers(), "Content-Type": "application/json"}
        resp = await api.request(method, path, headers=headers, **kwargs)
        body = await problem(resp, status, code)
        await healthy(api)
        assert await stored(tenant) == before, f"{method} {path} stored something"
        return body

    return send


# -- depth ---------------------------------------------------------------------------------------


async def test_schema_nested_2000_levels_is_400(hostile: Any) -> None:
    schema = nested(2000, {"type": "string"})
    await hostile("PUT", "/api/workflow/schemas/payload.Deep.v1", 400, "JSON_TOO_DEEP", json=schema)


async def test_schema_array_10000_deep_is_400(hostile: Any) -> None:
    raw = deep_array_text(10_000)
    await hostile("PUT", "/api/workflow/schemas/payload.Deep.v1", 400, "JSON_TOO_DEEP", data=raw)


async def test_schema_just_past_the_depth_limit_is_400(hostile: Any) -> None:
    schema = nested(MAX_JSON_DEPTH, {"type": "string"})  # the leaf object is level 65
    body = await hostile(
        "PUT", "/api/workflow/schemas/payload.Deep.v1", 400, "JSON_TOO_DEEP", json=schema
    )
    assert str(MAX_JSON_DEPTH) in body["detail"]


async def test_run_payload_nested_5000_levels_is_400(api: Any, tenant: Any, hostile: Any) -> None:
    wf = await api.create_published(tenant.headers())
    body = {"workflowId": wf, "payload": nested(5000)}
    await hostile("POST", "/api/workflow-runs", 400, "JSON_TOO_DEEP", json=body)


async def test_run_payload_at_the_depth_limit_is_accepted(api: Any, tenant: Any) -> None:
    wf = await api.create_published(tenant.headers())
    # the body object is level 1, `payload` level 2: the payload may nest 63 levels in all
    run = await api.launch(tenant.headers(), wf, nested(MAX_JSON_DEPTH - 2))
    resp = await api.get(f"/api/workflow-runs/{run['runId']}", headers=tenant.headers())
    assert resp.status == 200
    await healthy(api)


async def test_deep_definition_is_400(hostile: Any) -> None:
    definition = {"name": "deep", "steps": [], "description": nested(200)}
    await hostile(
        "POST", "/api/workflow-definitions", 400, "JSON_TOO_DEEP", json={"definition": definition}
    )


async def test_deep_event_is_400_and_not_published(
    tenant: Any, hostile: Any, nats_url: str
) -> None:
    name = f"DEEP_{uuid.uuid4().hex[:6].upper()}"
    event = {"eventName": name, "payload": nested(3000)}
    await hostile("POST", "/api/workflow/events", 400, "JSON_TOO_DEEP", json=event)
    nc = await nats.connect(nats_url)
    try:
        with pytest.raises(NotFoundError):
            await nc.jetstream().get_last_msg(EVENTS_STREAM, event_subject(str(tenant.id), name))
    finally:
        await nc.close()


async def test_deep_task_completion_is_400(hostile: Any) -> None:
    path = f"/api/workflow/tasks/{uuid.uuid4()}/complete"
    await hostile("POST", path, 400, "JSON_TOO_DEEP", json={"payload": nested(1000)})


async def test_deep_replay_payload_is_400(api: Any, tenant: Any, hostile: Any) -> None:
    wf = await api.create_published(tenant.headers())
    run = await api.launch(tenant.headers(), wf)
    body = {"reason": "hostile", "payload": nested(1000)}
    path = f"/api/workflow-runs/{run['runId']}/replay"
    await hostile("POST", path, 400, "JSON_TOO_DEEP", json=body)


# -- bytes that are not JSON, NUL, size ----------------------------------------------------------


async def test_every_route_with_a_body_answers_400_to_invalid_utf8(
    api: Any, tenant: Any, hostile: Any
) -> None:
    wf = await api.create_published(tenant.headers())
    run = (await api.launch(tenant.headers(), wf))["runId"]
    routes = [
        ("POST", "/api/workflow-definitions"),
        ("PUT", f"/api/workflow-definitions/{wf}"),
        ("PATCH", f"/api/workflow-definitions/{wf}"),
        ("POST", f"/api/workflow-definitions/{wf}/publish"),
        ("POST", "/api/workflow-runs"),
        ("POST", f"/api/workflow-runs/{run}/cancel"),
        ("POST", f"/api/workflow-runs/{run}/replay"),
        ("POST", f"/api/workflow-runs/{run}/quota-resume"),
        ("POST", "/api/workflow/events"),
        ("PUT", "/api/workflow/schemas/payload.Bytes.v1"),
        ("POST", f"/api/workflow/tasks/{uuid.uuid4()}/complete"),
    ]
    for method, path in routes:
        body = await hostile(method, path, 400, "INVALID_JSON", data=INVALID_UTF8)
        assert "\xc3" not in body["detail"], f"{method} {path} echoed the bytes"


async def test_nul_character_in_a_payload_is_400(api: Any, tenant: Any, hostile: Any) -> None:
    wf = await api.create_published(tenant.headers())
    body = {"workflowId": wf, "payload": {"text": "a\u0000b"}}
    await hostile("POST", "/api/workflow-runs", 400, "INVALID_INPUT", json=body)


async def test_body_over_the_size_limit_is_413_on_every_kind(hostile: Any) -> None:
    big = {"blob": "x" * (600 * 1024)}
    await hostile("PUT", "/api/workflow/schemas/payload.Big.v1", 413, "PAYLOAD_TOO_LARGE", json=big)
    event = {"eventName": "BIG", "payload": big}
    await hostile("POST", "/api/workflow/events", 413, "PAYLOAD_TOO_LARGE", json=event)


async def test_secret_ref_in_a_payload_is_accepted_as_data_and_read_back_redacted(
    api: Any, tenant: Any
) -> None:
    wf = await api.create_published(tenant.headers())
    run = await api.launch(tenant.headers(), wf, {"injected": {"$secret": "PROBE_SECRET"}})
    resp = await api.get(f"/api/workflow-runs/{run['runId']}", headers=tenant.headers(Role.READ))
    assert resp.status == 200
    text = await resp.text()
    assert "PROBE_SECRET" not in text and "[SECRET:REDACTED]" in text


# -- aiohttp's own parser errors -----------------------------------------------------------------


@pytest.fixture
async def served(service_env: dict[str, str], events_stream: None) -> AsyncIterator[int]:
    """The app behind the production runner (`ProblemAppRunner`) on a real port."""
    runner = ProblemAppRunner(create_app(Settings.from_env(service_env)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    sock = site._server.sockets[0]  # type: ignore[union-attr]
    try:
        yield int(sock.getsockname()[1])
    finally:
        await runner.cleanup()


async def _raw_exchange(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    return status, headers, body


SECRET_KEY_TEXT = "sw_live_DO_NOT_ECHO_ME"


@pytest.mark.parametrize(
    "headers",
    [
        f"Authorization: Bearer {SECRET_KEY_TEXT}\x01x\r\n".encode(),  # control character
        f"X-Long: {SECRET_KEY_TEXT}{'a' * 9000}\r\n".encode(),  # header line over 8 KiB
        b"".join(f"X-H{i}: {SECRET_KEY_TEXT}\r\n".encode() for i in range(500)),  # 500 headers
    ],
    ids=["control-character", "8k-header", "500-headers"],
)
async def test_parser_errors_are_problem_json_without_echo(served: int, headers: bytes) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"
    status, response_headers, body = await _raw_exchange(served, request)
    assert status == 400
    assert response_headers["content-type"].startswith("application/problem+json")
    assert b'"code":"INVALID_REQUEST"' in body
    assert SECRET_KEY_TEXT.encode() not in body
    ok = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    assert (await _raw_exchange(served, ok))[0] == 200


# -- seeded fuzz: random bytes and mixed deep nesting on every route with a body ------------------


def _fuzz_bodies(rng: random.Random) -> list[bytes]:
    bodies = [rng.randbytes(rng.randint(1, 300)) for _ in range(8)]
    for _ in range(8):
        depth = rng.choice([63, 64, 65, 100, 999, 1001, 5000])
        opens = [rng.choice([b"[", b'{"k":']) for _ in range(depth)]
        closes = [b"]" if o == b"[" else b"}" for o in reversed(opens)]
        bodies.append(b"".join(opens) + b"1" + b"".join(closes))
    bodies += [
        b'{"payload": {"s": "\\ud800"}}',  # a lone surrogate escape
        b'{"payload": {"\\u0000": 1}}',
        b'{"reason": "' + "é".encode("utf-16") + b'"}',
        b"\xef\xbb\xbf{}",  # a byte-order mark
        b'{"payload": ' + b"1" * 5000 + b"}",  # a huge integer
    ]
    return bodies


async def test_seeded_fuzz_never_answers_5xx(api: Any, tenant: Any) -> None:
    """schemathesis generates from the documented schemas, which never nest this deep nor send
    bytes that are not JSON; these seeded bodies cover that side."""
    wf = await api.create_published(tenant.headers())
    run = (await api.launch(tenant.headers(), wf))["runId"]
    paths = [
        ("POST", "/api/workflow-definitions"),
        ("PUT", f"/api/workflow-definitions/{wf}"),
        ("POST", "/api/workflow-runs"),
        ("POST", f"/api/workflow-runs/{run}/cancel"),
        ("POST", f"/api/workflow-runs/{run}/replay"),
        ("POST", f"/api/workflow-runs/{run}/quota-resume"),
        ("POST", "/api/workflow/events"),
        ("PUT", "/api/workflow/schemas/payload.Fuzz.v1"),
        ("POST", f"/api/workflow/tasks/{uuid.uuid4()}/complete"),
    ]
    rng = random.Random(17)
    headers = {**tenant.headers(), "Content-Type": "application/json"}
    for body in _fuzz_bodies(rng):
        for method, path in paths:
            resp = await api.request(method, path, headers=headers, data=body)
            # a body within the limits may be accepted (a schema of 63 unknown keywords is valid)
            assert resp.status < 500, (method, path, body[:80], await resp.text())
            if resp.status >= 400:
                assert resp.content_type == "application/problem+json"
    await healthy(api)


async def test_undecodable_bytes_in_paths_and_queries_never_answer_5xx(
    api: Any, tenant: Any
) -> None:
    from yarl import URL

    paths = [
        "/api/workflow-runs/%ff%fe",
        "/api/workflow-runs?status=%ff%fe",
        "/api/workflow-runs?cursor=%00%ff",
        "/api/workflow-runs?limit=%00",
        "/api/workflow-definitions/%c3%28",
        "/api/workflow/events?cursor=%ed%a0%80",
        "/api/workflow/events/%00",
        "/api/workflow/schemas/%ff",
        "/api/workflow/tasks?status=%ff",
        "/api/workflow-runs/export?status=%ff",
    ]
    for path in paths:
        resp = await api.get(URL(path, encoded=True), headers=tenant.headers(Role.READ))
        assert resp.status < 500, (path, resp.status, await resp.text())
        if resp.status >= 400:
            assert resp.content_type == "application/problem+json", path
    await healthy(api)
