"""The connection type the jobs pass around: a pooled connection (`pool.acquire()`) holding the
current transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# a string: `PoolConnectionProxy` is not subscriptable at runtime
PooledConnection: TypeAlias = "PoolConnectionProxy[asyncpg.Record]"
