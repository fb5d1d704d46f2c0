"""JSON answers: msgspec encoding (datetimes as RFC 3339, uuids as strings), rows as dicts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg
import msgspec
from aiohttp import web

_encoder = msgspec.json.Encoder()


def json_response(
    data: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=_encoder.encode(data), content_type="application/json", headers=headers
    )


def row(record: asyncpg.Record | None) -> dict[str, Any] | None:
    return dict(record) if record is not None else None


def rows(records: Iterable[asyncpg.Record]) -> list[dict[str, Any]]:
    return [dict(r) for r in records]
