"""Apply the numbered SQL migrations.

Idempotent, one transaction each, recorded in `schema_migrations`. On a database of the reference
runtime (see `adoption`), the adoption and all the migrations run in one transaction.

Migrations run with the services' search path (`stepwise, "$user", public`). On an adopted
database the schema `stepwise` exists, so a table a migration creates lands there, and
`CREATE TABLE IF NOT EXISTS` of a table that already exists in `public` would make a second one:
a migration after 0001 creates only new tables and alters existing ones by name.

Usage: `python -m stepwise_contract.platform.migrate [DATABASE_URL]` (default: `$DATABASE_URL`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from importlib import resources

import asyncpg

from stepwise_contract.platform import adoption

# Concurrent `migrate` runs (several replicas starting at once) serialise on this lock.
_LOCK_KEY = 0x5E_7701_5E


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    sql: str


def load_migrations() -> list[Migration]:
    folder = resources.files("stepwise_contract") / "migrations"
    found = [
        Migration(version=entry.name.removesuffix(".sql"), sql=entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found, key=lambda m: m.version)


async def _apply(conn: asyncpg.Connection, migration: Migration) -> None:
    await conn.execute(migration.sql)
    await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", migration.version)


async def applied_versions(conn: asyncpg.Connection) -> set[str]:
    """The versions recorded in `schema_migrations` (none on a fresh or reference database)."""
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return set()
    return {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}


def _adopt_with(pending: list[Migration]) -> adoption.Run:
    async def run(conn: asyncpg.Connection, target: adoption.Target) -> None:
        await adoption.prepare(conn, target)
        await _ensure_ledger(conn)
        for migration in pending:
            await _apply(conn, migration)
        await adoption.finish(conn, target)

    return run


# Created only when the name does not resolve: on an adopted database the search path starts with
# schema `stepwise`, where IF NOT EXISTS would not see the ledger in `public` and make a second one.
_CREATE_LEDGER = (
    "CREATE TABLE schema_migrations ("
    " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
)


async def _ensure_ledger(conn: asyncpg.Connection) -> None:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        await conn.execute(_CREATE_LEDGER)


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = await applied_versions(conn)
        pending = [m for m in load_migrations() if m.version not in done]
        target = await adoption.detect(conn, done)
        if target is not None:
            async with conn.transaction():
                await _adopt_with(pending)(conn, target)
            return [m.version for m in pending]
        await _ensure_ledger(conn)
        for migration in pending:
            async with conn.transaction():
                await _apply(conn, migration)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return [m.version for m in pending]


async def plan_adoption(conn: asyncpg.Connection) -> adoption.Report:
    """What `apply_migrations` would change on a reference database; changes nothing."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = await applied_versions(conn)
        pending = [m for m in load_migrations() if m.version not in done]
        return await adoption.plan(conn, done, [m.version for m in pending], _adopt_with(pending))
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def connect(dsn: str) -> asyncpg.Connection:
    """A migration connection, with the search path every Stepwise connection uses."""
    return await asyncpg.connect(dsn, server_settings={"search_path": adoption.SEARCH_PATH})


async def migrate(dsn: str) -> list[str]:
    conn = await connect(dsn)
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    dsn = args[0] if args else os.environ.get("DATABASE_URL", "")
    if not dsn:
        print("migrate: DATABASE_URL is not set", file=sys.stderr)
        return 2
    try:
        applied = asyncio.run(migrate(dsn))
    except adoption.AdoptionError as exc:
        print(f"migrate: cannot adopt this database (nothing changed): {exc}", file=sys.stderr)
        return 1
    print(
        f"migrate: applied {len(applied)} migration(s): {', '.join(applied) or 'none (up to date)'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
