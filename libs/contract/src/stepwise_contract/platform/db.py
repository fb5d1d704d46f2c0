"""asyncpg pools with the json/jsonb codecs registered once (msgspec encodes and decodes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
import msgspec

from stepwise_contract.platform.adoption import SEARCH_PATH

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# Where a statement may run: a pool, a connection, or a pooled connection inside a transaction
# (`async with pool.acquire() as conn`). A string: the proxy is not subscriptable at runtime.
Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def _encode_text(value: Any) -> str:
    return _encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(
            typename, encoder=_encode_text, decoder=_decode, schema="pg_catalog", format="text"
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset statement (see `create_pool`)."""


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, session_state: bool = False
) -> asyncpg.Pool:
    """A pool with the json codecs.

    asyncpg resets every connection it takes back (`pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`): one more round trip per pool call, ~9% of the API's and the router's
    profile under load. Code on these pools keeps no session state (settings are `SET LOCAL` /
    `set_config(..., true)`, locks are transaction locks, no LISTEN, no cursors outside a
    transaction), so only the local reset runs (which still rolls back an open transaction).
    `session_state=True` keeps asyncpg's reset, for callers that take session advisory locks.
    """
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=init_connection,
        # on an adopted database, `tenants` is Stepwise's (schema `stepwise`), not the host's
        server_settings={"search_path": SEARCH_PATH},
        command_timeout=30,
        reset=None if session_state else _keep_session,
    )
    assert pool is not None
    return pool
