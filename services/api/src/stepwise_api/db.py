"""Types of what a query runs on: a pool, or a connection (plain or pooled, in a transaction)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# Strings: the pooled-connection proxy is not subscriptable at runtime.
Tx: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
Conn: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
