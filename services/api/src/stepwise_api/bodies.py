"""Request bodies: size-limited, depth-checked, decoded with msgspec into the contract's request
Structs.

Every body is decoded untyped first (`decode_json`): bytes that are not UTF-8, malformed JSON,
nesting deeper than `MAX_JSON_DEPTH` and NUL characters answer 400 before any handler sees them.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web
from stepwise_contract.json_limits import JsonRefused, decode_json

from stepwise_api.errors import ApiError

T = TypeVar("T")


async def _raw(request: web.Request) -> bytes:
    # `client_max_size` on the application makes `read()` raise 413 past the limit.
    return await request.read()


def _checked(raw: bytes) -> Any:
    try:
        return decode_json(raw, what="the request body")
    except JsonRefused as exc:
        raise ApiError(400, exc.code, exc.detail) from None


async def json_body(request: web.Request) -> Any:
    """Any JSON value; malformed JSON answers 400 INVALID_JSON."""
    raw = await _raw(request)
    if not raw.strip():
        raise ApiError(400, "INVALID_JSON", "a JSON body is required")
    return _checked(raw)


async def typed_body(request: web.Request, kind: type[T], *, optional: bool = False) -> T:
    """The body decoded as `kind`; with `optional`, an empty body counts as `{}`."""
    raw = await _raw(request)
    if not raw.strip():
        if not optional:
            raise ApiError(400, "INVALID_JSON", "a JSON body is required")
        raw = b"{}"
    _checked(raw)
    try:
        return msgspec.json.decode(raw, type=kind)
    except msgspec.ValidationError as exc:
        raise ApiError(400, "INVALID_BODY", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ApiError(400, "INVALID_JSON", f"malformed JSON: {exc}") from None
