"""Apply the numbered SQL migrations.

Idempotent, one transaction each, recorded in `schema_migrations`.

Usage: `python -m stepwise_contract.migrate [DATABASE_URL]` (default: `$DATABASE_URL`).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from importlib import resources

import asyncpg

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


async def apply_migrations(conn: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the versions applied now."""
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in load_migrations():
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version) VALUES ($1)", migration.version
                )
            applied.append(migration.version)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    return applied


async def migrate(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
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
    applied = asyncio.run(migrate(dsn))
    print(
        f"migrate: applied {len(applied)} migration(s): {', '.join(applied) or 'none (up to date)'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
