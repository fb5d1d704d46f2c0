"""`stepwise admin adopt [--dry-run]`: adopt a database of the reference runtime (docs/adoption.md).

`--dry-run` performs the adoption in a transaction that is rolled back and prints what it would
change: tables created, columns added, indexes, constraints dropped, stranded runs to cancel.
Without it, the same as `migrate` (which adopts a reference database by itself). Reads
`DATABASE_URL`; `--json` prints the report as an object.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from typing import Any

import asyncpg
from stepwise_contract.platform.adoption import AdoptionError, describe, detect
from stepwise_contract.platform.migrate import (
    applied_versions,
    apply_migrations,
    connect,
    plan_adoption,
)
from stepwise_contract.platform.settings import DEFAULT_DATABASE_URL


async def adopt(dsn: str, dry_run: bool) -> tuple[dict[str, Any], str]:
    """(the report as an object, as text)."""
    conn = await connect(dsn)
    try:
        if dry_run:
            report = await plan_adoption(conn)
            return dataclasses.asdict(report), describe(report)
        adopting = await detect(conn, await applied_versions(conn)) is not None
        applied = await apply_migrations(conn)
    finally:
        await conn.close()
    done = "adopted" if adopting else "migrated"
    text = f"{done}; applied {', '.join(applied) or 'nothing (up to date)'}"
    return {"adopted": adopting, "applied": applied}, text


def run(args: argparse.Namespace) -> int:
    dsn = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    try:
        result, text = asyncio.run(adopt(dsn, args.dry_run))
    except AdoptionError as exc:
        print(f"stepwise admin adopt: cannot adopt: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"stepwise admin adopt: database error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else text)
    return 0


def register(objects: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    text = "adopt a database of the reference runtime (--dry-run: report the changes only)"
    parser = objects.add_parser("adopt", help=text, description=text)
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would change; change nothing"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)
