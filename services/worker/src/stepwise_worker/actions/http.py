"""`http.request@1`: one HTTP exchange with an external service (SPEC §6).

Errors are classified where they happen: connection failures, timeouts, 5xx and 429 are
`TransientError` (worth a retry), other 4xx an `ActionError` with code `HTTP_<status>`, a refused
target an `ActionError` with code `HTTP_TARGET_REFUSED`.

Targets that are not globally routable (private, loopback, link-local, unspecified, shared,
reserved, documentation ranges) and multicast are refused unless `settings.allow_private_http`;
so is every IPv6 address that embeds or translates to such an IPv4 address (IPv4-mapped,
-compatible and -translated, NAT64 `64:ff9b::/96` and `64:ff9b:1::/48`, 6to4, Teredo). The check
runs in the connector's resolver, on the very addresses the socket then connects to (a name that
re-resolves elsewhere between check and connect gains nothing), and on IP literals before each
request. Redirects are followed by hand, up to `settings.http_max_redirects`, so every hop passes
the same check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any, Final

import aiohttp
import msgspec
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from stepwise_worker.actions.base import ActionContext, ActionFailure, JSONObject

DEFAULT_TIMEOUT_MS: Final = 30_000
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
# Credentials are for the origin they were written for, not wherever it redirects.
_ORIGIN_BOUND_HEADERS: Final = frozenset({"authorization", "cookie", "proxy-authorization"})
_decode_json = msgspec.json.Decoder().decode

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The target resolves to an address this worker must not reach."""


# IPv6 prefixes that carry an IPv4 address in their low 32 bits and reach it through a translator:
# NAT64 well-known (RFC 6052) and local-use (RFC 8215), IPv4-compatible (deprecated `::a.b.c.d`),
# IPv4-translated (SIIT, `::ffff:0:a.b.c.d`).
_EMBEDDING_LOW_32 = (
    ipaddress.IPv6Network("64:ff9b::/96"),
    ipaddress.IPv6Network("64:ff9b:1::/48"),
    ipaddress.IPv6Network("::/96"),
    ipaddress.IPv6Network("::ffff:0:0:0/96"),
)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address embeds or translates to."""
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:  # 2002::/16
        found.append(ip.sixtofour)
    if ip.teredo is not None:  # 2001::/32: (server, client)
        found.extend(ip.teredo)
    if any(ip in net for net in _EMBEDDING_LOW_32):
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def _refused_v4(ip: ipaddress.IPv4Address) -> bool:
    # `is_global` is False for private, loopback, link-local, unspecified, reserved and shared
    # (100.64/10) ranges alike; multicast is "global" but never a web server
    return not ip.is_global or ip.is_multicast


def is_refused_address(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv4Address):
        return _refused_v4(ip)
    embedded = _embedded_ipv4(ip)
    if any(_refused_v4(v4) for v4 in embedded):
        return True
    if ip.ipv4_mapped is not None:  # judged by the IPv4 address alone
        return False
    return not ip.is_global or ip.is_multicast


def _check_address(host: str, address: str) -> None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if is_refused_address(ip):
        raise TargetRefused(f"{host} resolves to {ip}, a private or local address")


class GuardedResolver(AbstractResolver):
    """Resolves like aiohttp does, then refuses the whole name if any address is not public."""

    def __init__(self) -> None:
        self._inner: AbstractResolver = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            _check_address(host, result["host"])
        return results

    async def close(self) -> None:
        await self._inner.close()


def _literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _check_url(url: URL, allow_private: bool) -> None:
    if url.scheme not in ("http", "https") or not url.host:
        raise ActionFailure(
            f"only absolute http(s) URLs can be requested, not {url}",
            category="ValidationError",
            code="HTTP_INVALID_URL",
        )
    if allow_private:
        return
    # aiohttp skips the resolver for IP literals, so they are checked here
    ip = _literal_ip(url.host)
    if ip is not None and is_refused_address(ip):
        raise ActionFailure(f"{url.host} is a private or local address", code="HTTP_TARGET_REFUSED")


def _query_pairs(query: dict[str, Any]) -> list[tuple[str, str]]:
    def text(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        return "" if v is None else str(v)

    pairs: list[tuple[str, str]] = []
    for name, value in query.items():
        for v in value if isinstance(value, list) else [value]:
            pairs.append((name, text(v)))
    return pairs


async def _read_capped(resp: aiohttp.ClientResponse, cap: int) -> bytes:
    declared = resp.content_length
    if declared is not None and declared > cap:
        raise _too_large(cap)
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > cap:
            raise _too_large(cap)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(cap: int) -> ActionFailure:
    return ActionFailure(
        f"response body exceeds {cap} bytes", code="HTTP_RESPONSE_TOO_LARGE", details={"cap": cap}
    )


def _headers(resp: aiohttp.ClientResponse) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in resp.headers.items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


def _body_output(resp: aiohttp.ClientResponse, raw: bytes) -> JSONObject:
    ctype = resp.content_type
    if raw and (ctype == "application/json" or ctype.endswith("+json")):
        try:
            return {"json": _decode_json(raw)}
        except msgspec.DecodeError:
            pass  # a server that lies about its content type still gets its text returned
    return {"text": raw.decode(resp.charset or "utf-8", errors="replace")}


def _redirect_target(resp: aiohttp.ClientResponse) -> URL | None:
    location = resp.headers.get("Location")
    if resp.status not in _REDIRECTS or not location:
        return None
    return resp.url.join(URL(location))


async def http_request(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    settings = ctx.settings
    method: str = payload["method"]
    try:
        url = URL(payload["url"])
    except ValueError as exc:
        raise ActionFailure(
            f"invalid URL: {exc}", category="ValidationError", code="HTTP_INVALID_URL"
        ) from exc
    headers: dict[str, str] = dict(payload.get("headers") or {})
    params = _query_pairs(payload.get("query") or {})
    if "json" in payload and "body" in payload:
        raise ActionFailure(
            "give either json or body, not both", category="ValidationError", code="HTTP_BODY"
        )
    data: bytes | None = None
    content_type: str | None = None
    if "json" in payload:
        data, content_type = msgspec.json.encode(payload["json"]), "application/json"
    elif "body" in payload:
        data, content_type = str(payload["body"]).encode(), "text/plain; charset=utf-8"
    if content_type and not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = content_type
    timeout_s = payload.get("timeoutMs", DEFAULT_TIMEOUT_MS) / 1000
    allow_private = settings.allow_private_http
    connector = aiohttp.TCPConnector(resolver=None if allow_private else GuardedResolver())
    try:
        async with (
            aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as session,
            asyncio.timeout(timeout_s),
        ):
            for _hop in range(settings.http_max_redirects + 1):
                _check_url(url, allow_private)
                async with session.request(
                    method,
                    url.extend_query(params) if params else url,
                    headers=headers,
                    data=data,
                    allow_redirects=False,
                ) as resp:
                    target = _redirect_target(resp)
                    if target is None:
                        raw = (
                            b""
                            if method == "HEAD"
                            else await _read_capped(resp, settings.http_max_response_bytes)
                        )
                        return _result(resp, raw)
                if target.origin() != url.origin():
                    headers = {
                        k: v for k, v in headers.items() if k.lower() not in _ORIGIN_BOUND_HEADERS
                    }
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, data = "GET", None
                    headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
                url, params = target, []
    except aiohttp.ClientConnectorError as exc:
        if isinstance(exc.os_error, TargetRefused):
            raise ActionFailure(str(exc.os_error), code="HTTP_TARGET_REFUSED") from exc
        raise _transient(f"cannot connect to {url.host}: {exc}", "HTTP_CONNECTION") from exc
    except TimeoutError as exc:  # before OSError, its base class
        raise _transient(
            f"no response from {url.host} within {timeout_s}s", "HTTP_TIMEOUT"
        ) from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise _transient(f"connection to {url.host} failed: {exc!r}", "HTTP_CONNECTION") from exc
    raise ActionFailure(
        f"more than {settings.http_max_redirects} redirects", code="HTTP_TOO_MANY_REDIRECTS"
    )


def _transient(message: str, code: str) -> ActionFailure:
    return ActionFailure(message, category="TransientError", code=code)


def _result(resp: aiohttp.ClientResponse, raw: bytes) -> JSONObject:
    out: JSONObject = {"status": resp.status, "headers": _headers(resp), **_body_output(resp, raw)}
    if resp.status < 400:
        return out
    transient = resp.status >= 500 or resp.status == 429
    raise ActionFailure(
        f"HTTP {resp.status} from {resp.url.host}",
        category="TransientError" if transient else "ActionError",
        code=f"HTTP_{resp.status}",
        details={"status": resp.status, **_excerpt(out)},
    )


def _excerpt(out: JSONObject) -> JSONObject:
    """The error body, kept small: it lands in error_json and workflow history."""
    if "json" in out:
        text = msgspec.json.encode(out["json"]).decode()
        if len(text) <= 2048:
            return {"json": out["json"]}
        return {"text": text[:2048]}
    return {"text": str(out.get("text", ""))[:2048]}
