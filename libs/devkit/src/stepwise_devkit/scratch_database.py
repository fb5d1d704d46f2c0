"""Scratch databases: a fresh, empty database for one test session, fixture or bench run."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import uuid
from collections.abc import Iterator

import asyncpg


async def _admin(admin_url: str, sql: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(admin_url: str, prefix: str) -> Iterator[str]:
    """Create `<prefix>_<random>` on the server of `admin_url` (a URL with CREATE DATABASE
    rights), yield its URL, and drop it on exit, forcing out whatever is still connected.

    Synchronous (each statement in its own `asyncio.run`): callers are sync fixtures and entry
    points that run no event loop of their own.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def add_pg_admin_url(parser: argparse.ArgumentParser) -> None:
    """`--pg-admin-url` of the bench entry points (default `$STEPWISE_BENCH_PG_ADMIN_URL`, else
    the machine's Postgres as `postgres`)."""
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "STEPWISE_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a Postgres URL with CREATE DATABASE rights (a fresh database is made and dropped)",
    )
