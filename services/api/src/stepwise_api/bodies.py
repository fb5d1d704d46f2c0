"""Request bodies: size-limited, decoded with msgspec into the contract's request Structs."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from stepwise_api.errors import ApiError

T = TypeVar("T")


async def _raw(request: web.Request) -> bytes:
    # `client_max_size` on the application makes `read()` raise 413 past the limit.
    return await request.read()


async def json_body(request: web.Request) -> Any:
    """Any JSON value; malformed JSON answers 400 INVALID_JSON."""
    raw = await _raw(request)
    if not raw.strip():
        raise ApiError(400, "INVALID_JSON", "a JSON body is required")
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ApiError(400, "INVALID_JSON", f"malformed JSON: {exc}") from None


async def typed_body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    """The body decoded as `kind`; with `optional`, an empty body counts as `{}`."""
    raw = await _raw(request)
    if not raw.strip():
        if not optional:
            raise ApiError(400, "INVALID_JSON", "a JSON body is required")
        raw = b"{}"
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "INVALID_BODY", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "INVALID_JSON", f"malformed JSON: {exc}") from None
