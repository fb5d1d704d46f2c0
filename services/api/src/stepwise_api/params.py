"""Query and path parameters: parsed strictly, a bad value answers 400 (never 500)."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web

from stepwise_api.errors import ApiError

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


def path_uuid(request: web.Request, name: str, what: str) -> uuid.UUID:
    """A uuid path parameter; anything else cannot name a resource: 404."""
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise ApiError(404, "NOT_FOUND", f"{what} not found") from None


def query_int(
    request: web.Request,
    name: str,
    default: int | None = None,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be an integer") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be between {minimum} and {maximum}")
    return value


def limit(request: web.Request, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    value = query_int(request, "limit", default, minimum=1, maximum=maximum)
    assert value is not None
    return value


def query_datetime(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must carry a timezone (e.g. Z)")
    return value


def query_uuid(request: web.Request, name: str) -> uuid.UUID | None:
    raw = request.query.get(name)
    if not raw:
        return None
    try:
        return uuid.UUID(raw)
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be a uuid") from None


def query_list(request: web.Request, name: str) -> list[str]:
    """A repeatable parameter; each value may also be a comma-separated list."""
    out: list[str] = []
    for raw in request.query.getall(name, []):
        out.extend(v.strip() for v in raw.split(",") if v.strip())
    return out


def encode_cursor(values: list[Any]) -> str:
    """An opaque keyset cursor: the sort values of the last item returned."""
    return base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")


def decode_cursor(request: web.Request, size: int) -> list[Any] | None:
    raw = request.query.get("cursor")
    if not raw:
        return None
    try:
        values = msgspec.json.decode(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise ApiError(400, "INVALID_CURSOR", "the cursor is not one this API issued") from None
    if not isinstance(values, list) or len(values) != size:
        raise ApiError(400, "INVALID_CURSOR", "the cursor is not one this API issued")
    return values


def time_id_cursor(request: web.Request, *, uuid_id: bool = True) -> tuple[datetime, str] | None:
    """A keyset cursor of (timestamp, id), the shape of most lists."""
    values = decode_cursor(request, 2)
    if values is None:
        return None
    try:
        at = datetime.fromisoformat(str(values[0]))
        if uuid_id:
            uuid.UUID(str(values[1]))
        if at.tzinfo is None:
            raise ValueError("naive timestamp")
        return at, str(values[1])
    except ValueError:
        raise ApiError(400, "INVALID_CURSOR", "the cursor is not one this API issued") from None


def make_time_id_cursor(at: datetime, ident: Any) -> str:
    return encode_cursor([at.isoformat(), str(ident)])
