"""http.request@1 against a real aiohttp server on loopback (allowed by settings in these tests)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from stepwise_worker.actions.base import ActionContext, ActionFailure, ActionSettings, invoke
from stepwise_worker.actions.http import GuardedResolver, TargetRefused, is_refused_address
from stepwise_worker.actions.registry import ActionRegistry

REGISTRY = ActionRegistry.default()
HITS = web.AppKey("hits", list[str])


async def _json(_req: web.Request) -> web.Response:
    return web.json_response({"ok": True, "n": [1, 2]})


async def _text(_req: web.Request) -> web.Response:
    return web.Response(text="héllo", content_type="text/plain", charset="utf-8")


async def _echo(req: web.Request) -> web.Response:
    body = await req.read()
    return web.json_response(
        {
            "method": req.method,
            "query": [[k, v] for k, v in req.query.items()],
            "contentType": req.headers.get("Content-Type"),
            "auth": req.headers.get("Authorization"),
            "custom": req.headers.get("X-Custom"),
            "body": body.decode(),
        },
        headers={"X-Reply": "yes"},
    )


async def _status(req: web.Request) -> web.Response:
    code = int(req.match_info["code"])
    return web.json_response({"error": f"status {code}"}, status=code)


async def _lying_json(_req: web.Request) -> web.Response:
    return web.Response(text="not json", content_type="application/json")


async def _big(_req: web.Request) -> web.Response:
    return web.Response(body=b"x" * 300_000, content_type="application/octet-stream")


async def _big_chunked(req: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()  # no Content-Length: the cap must hold while streaming
    await resp.prepare(req)
    for _ in range(30):
        await resp.write(b"y" * 10_000)
    await resp.write_eof()
    return resp


async def _slow(_req: web.Request) -> web.Response:
    await asyncio.sleep(2)
    return web.Response(text="late")


async def _redirect(req: web.Request) -> web.Response:
    raise web.HTTPFound(req.match_info["to"].replace("~", "/"))


async def _see_other(_req: web.Request) -> web.Response:
    raise web.HTTPSeeOther("/echo")


async def _loop(_req: web.Request) -> web.Response:
    raise web.HTTPFound("/loop")


@web.middleware
async def _count(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    request.app[HITS].append(request.path)
    resp: web.StreamResponse = await handler(request)
    return resp


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[TestServer]:
    app = web.Application(middlewares=[_count])
    app[HITS] = []
    app.router.add_get("/json", _json)
    app.router.add_get("/text", _text)
    app.router.add_route("*", "/echo", _echo)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/lying-json", _lying_json)
    app.router.add_get("/big", _big)
    app.router.add_get("/big-chunked", _big_chunked)
    app.router.add_get("/slow", _slow)
    app.router.add_route("*", "/redirect/{to}", _redirect)
    app.router.add_post("/see-other", _see_other)
    app.router.add_get("/loop", _loop)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    try:
        yield srv
    finally:
        await srv.close()


def _ctx(**settings: Any) -> ActionContext:
    return ActionContext(
        tenant_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        step_path="root.steps[0]",
        attempt=1,
        idempotency_key="k",
        settings=ActionSettings(**settings),
    )


async def _call(payload: dict[str, Any], **settings: Any) -> dict[str, Any]:
    action = REGISTRY.get("http.request", 1)
    assert action is not None
    assert action.declaration.local is False
    return await invoke(action, payload, _ctx(**settings))


async def _fails(payload: dict[str, Any], **settings: Any) -> ActionFailure:
    with pytest.raises(ActionFailure) as info:
        await _call(payload, **settings)
    return info.value


def _url(server: TestServer, path: str) -> str:
    return str(server.make_url(path))


async def test_get_json_and_text(server: TestServer) -> None:
    out = await _call({"method": "GET", "url": _url(server, "/json")}, allow_private_http=True)
    assert out["status"] == 200
    assert out["json"] == {"ok": True, "n": [1, 2]}
    assert "text" not in out
    assert out["headers"]["Content-Type"].startswith("application/json")
    text = await _call({"method": "GET", "url": _url(server, "/text")}, allow_private_http=True)
    assert (text["status"], text["text"]) == (200, "héllo")
    assert "json" not in text


async def test_request_parts_reach_the_server(server: TestServer) -> None:
    out = await _call(
        {
            "method": "POST",
            "url": _url(server, "/echo?fixed=1"),
            "headers": {"X-Custom": "v", "Authorization": "Bearer t"},
            "query": {"a": "x y", "n": 5, "flag": True, "many": [1, "two"]},
            "json": {"k": [1, None]},
        },
        allow_private_http=True,
    )
    assert out["headers"]["X-Reply"] == "yes"
    assert out["json"] == {
        "method": "POST",
        "query": [
            ["fixed", "1"],
            ["a", "x y"],
            ["n", "5"],
            ["flag", "true"],
            ["many", "1"],
            ["many", "two"],
        ],
        "contentType": "application/json",
        "auth": "Bearer t",
        "custom": "v",
        "body": '{"k":[1,null]}',
    }
    raw = await _call(
        {"method": "PUT", "url": _url(server, "/echo"), "body": "plain"}, allow_private_http=True
    )
    assert (raw["json"]["body"], raw["json"]["contentType"]) == (
        "plain",
        "text/plain; charset=utf-8",
    )
    head = await _call({"method": "HEAD", "url": _url(server, "/json")}, allow_private_http=True)
    assert (head["status"], head["text"]) == (200, "")


async def test_a_server_that_mislabels_its_body_still_gets_its_text_back(
    server: TestServer,
) -> None:
    out = await _call(
        {"method": "GET", "url": _url(server, "/lying-json")}, allow_private_http=True
    )
    assert out == {"status": 200, "headers": out["headers"], "text": "not json"}


@pytest.mark.parametrize("code", [500, 502, 503, 429])
async def test_5xx_and_429_are_transient(server: TestServer, code: int) -> None:
    err = await _fails(
        {"method": "GET", "url": _url(server, f"/status/{code}")}, allow_private_http=True
    )
    assert (err.category, err.code, err.retryable) == ("TransientError", f"HTTP_{code}", True)
    assert err.details == {"status": code, "json": {"error": f"status {code}"}}


@pytest.mark.parametrize("code", [400, 401, 404, 409, 422])
async def test_other_4xx_are_action_errors(server: TestServer, code: int) -> None:
    err = await _fails(
        {"method": "GET", "url": _url(server, f"/status/{code}")}, allow_private_http=True
    )
    assert (err.category, err.code, err.retryable) == ("ActionError", f"HTTP_{code}", False)
    assert err.details == {"status": code, "json": {"error": f"status {code}"}}


async def test_connection_refused_is_transient() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    err = await _fails(
        {"method": "GET", "url": f"http://127.0.0.1:{port}/"}, allow_private_http=True
    )
    assert (err.category, err.code) == ("TransientError", "HTTP_CONNECTION")


async def test_timeout_is_transient(server: TestServer) -> None:
    err = await _fails(
        {"method": "GET", "url": _url(server, "/slow"), "timeoutMs": 200}, allow_private_http=True
    )
    assert (err.category, err.code) == ("TransientError", "HTTP_TIMEOUT")


async def test_response_size_is_capped(server: TestServer) -> None:
    for path in ("/big", "/big-chunked"):
        err = await _fails(
            {"method": "GET", "url": _url(server, path)},
            allow_private_http=True,
            http_max_response_bytes=100_000,
        )
        assert (err.category, err.code) == ("ActionError", "HTTP_RESPONSE_TOO_LARGE")
    ok = await _call(
        {"method": "GET", "url": _url(server, "/big-chunked")},
        allow_private_http=True,
        http_max_response_bytes=300_000,
    )
    assert len(ok["text"]) == 300_000


async def test_redirects_are_followed_and_bounded(server: TestServer) -> None:
    out = await _call(
        {"method": "GET", "url": _url(server, "/redirect/~json")}, allow_private_http=True
    )
    assert (out["status"], out["json"]) == (200, {"ok": True, "n": [1, 2]})
    # 303 turns a POST into a body-less GET
    seen = await _call(
        {"method": "POST", "url": _url(server, "/see-other"), "json": {"a": 1}},
        allow_private_http=True,
    )
    assert (seen["json"]["method"], seen["json"]["body"], seen["json"]["contentType"]) == (
        "GET",
        "",
        None,
    )
    err = await _fails({"method": "GET", "url": _url(server, "/loop")}, allow_private_http=True)
    assert (err.category, err.code) == ("ActionError", "HTTP_TOO_MANY_REDIRECTS")


async def test_credentials_are_not_sent_to_another_origin(server: TestServer) -> None:
    # 127.0.0.1 and localhost are the same server but different origins
    target = f"http:~~localhost:{server.port}~echo"
    out = await _call(
        {
            "method": "GET",
            "url": _url(server, f"/redirect/{target}"),
            "headers": {"Authorization": "Bearer t", "X-Custom": "kept"},
        },
        allow_private_http=True,
    )
    assert (out["json"]["auth"], out["json"]["custom"]) == (None, "kept")


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "localhost",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "[fe80::1]",
        "100.64.0.1",
        # IPv6 forms that embed or translate to a private IPv4 address
        "[64:ff9b::7f00:1]",  # NAT64 well-known prefix
        "[64:ff9b:1::a00:1]",  # NAT64 local-use prefix
        "[::ffff:0:7f00:1]",  # IPv4-translated (SIIT)
        "[::7f00:1]",  # IPv4-compatible
        "[2002:7f00:1::]",  # 6to4
        "[2002:a9fe:a9fe::1]",  # 6to4 of the metadata address
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",  # Teredo, client 127.0.0.1
    ],
)
async def test_private_targets_are_refused_by_default(server: TestServer, host: str) -> None:
    hits_before = len(server.app[HITS])
    err = await _fails({"method": "GET", "url": f"http://{host}:{server.port}/json"})
    assert (err.category, err.code, err.retryable) == ("ActionError", "HTTP_TARGET_REFUSED", False)
    assert len(server.app[HITS]) == hits_before


async def test_only_http_urls() -> None:
    for url in ("file:///etc/passwd", "ftp://example.com/x", "/relative"):
        err = await _fails({"method": "GET", "url": url}, allow_private_http=True)
        assert (err.category, err.code) == ("ValidationError", "HTTP_INVALID_URL")


async def test_invalid_input_is_a_validation_error() -> None:
    bad_inputs: list[dict[str, Any]] = [
        {"url": "http://example.com"},
        {"method": "BREW", "url": "http://example.com"},
        {"method": "GET", "url": "http://example.com", "timeoutMs": 0},
        {"method": "GET", "url": "http://example.com", "headers": {"n": 1}},
    ]
    for bad in bad_inputs:
        err = await _fails(bad)
        assert (err.category, err.code) == ("ValidationError", "INVALID_ACTION_INPUT")
    err = await _fails({"method": "POST", "url": "http://example.com", "json": {}, "body": "x"})
    assert (err.category, err.code) == ("ValidationError", "HTTP_BODY")


async def test_guarded_resolver_checks_every_address() -> None:
    resolver = GuardedResolver()
    try:
        with pytest.raises(TargetRefused):
            await resolver.resolve("localhost", 80, socket.AF_UNSPEC)
    finally:
        await resolver.close()
    public = [ipaddress.ip_address(a) for a in ("8.8.8.8", "2606:4700:4700::1111", "1.1.1.1")]
    assert not any(is_refused_address(ip) for ip in public)
    assert is_refused_address(ipaddress.ip_address("224.0.0.1"))


class _FixedResolver(GuardedResolver):
    """The guard over a resolver that answers `address` for every name (a hostile DNS)."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

        class Inner:
            async def resolve(self, host: str, port: int = 0, family: Any = 0) -> list[Any]:
                return [{"hostname": host, "host": address, "port": port, "family": family,
                         "proto": 0, "flags": 0}]  # fmt: skip

            async def close(self) -> None:
                return None

        self._inner = Inner()  # type: ignore[assignment]


@pytest.mark.parametrize(
    "address", ["64:ff9b::a9fe:a9fe", "::ffff:0:a00:1", "2002:c0a8:1::", "::ffff:127.0.0.1"]
)
async def test_names_resolving_to_embedded_private_addresses_are_refused(address: str) -> None:
    resolver = _FixedResolver(address)
    with pytest.raises(TargetRefused):
        await resolver.resolve("rebinding.example", 80, socket.AF_UNSPEC)
    public = _FixedResolver("64:ff9b::808:808")  # NAT64 of a public address is a public target
    assert (await public.resolve("ok.example", 80))[0]["host"] == "64:ff9b::808:808"
