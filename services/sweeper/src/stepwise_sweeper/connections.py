"""The connection types the jobs pass around.

Jobs hold a pooled connection (`pool.acquire()`) for a transaction. The contract's launch helpers
are annotated for a plain connection or a pool; a pooled connection forwards every call to its
connection, so `as_connection` only tells the type checker so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias, cast

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# strings: `PoolConnectionProxy` is not subscriptable at runtime
PooledConnection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PooledConnection"


def as_connection(conn: PooledConnection) -> asyncpg.Connection:
    return cast(asyncpg.Connection, conn)
