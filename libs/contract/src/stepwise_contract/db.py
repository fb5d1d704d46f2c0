"""asyncpg pools with the json/jsonb codecs registered once (msgspec encodes and decodes)."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _encode_text(value: Any) -> str:
    return _encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_encode_text, decoder=_decode, schema="pg_catalog", format="text"
        )


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection, command_timeout=30
    )
    assert pool is not None
    return pool
