"""Operator-visible run log lines (`workflow_run_logs`): the one statement every service writes.

The lines travel as one jsonb array (`LogLine`s, or records with the same keys), so any number of
them is one round trip, and the statement can be a CTE of a larger one (the worker writes a step's
lines with its projection, the API a new run's with its row).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import msgspec

from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.platform.db import Executor


class LogLine(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    level: LogLevel
    message: str
    context: dict[str, Any] | None = None
    step_path: str | None = None
    # None = the run the statement writes for
    run_id: uuid.UUID | None = None


def insert_logs_sql(*, tenant: str, run_id: str, lines: str, source: LogSource) -> str:
    """`INSERT INTO workflow_run_logs` of the records in the jsonb `lines`, for run `run_id` unless
    a record names its own; arguments are SQL expressions (usually `$n` parameters)."""
    return f"""
INSERT INTO workflow_run_logs (
    log_id, tenant, run_id, step_path, level, message, context_json, source
)
SELECT gen_random_uuid(), {tenant}, coalesce(l.run_id, {run_id}), l.step_path, l.level, l.message,
       l.context, '{source.value}'
FROM jsonb_to_recordset({lines}::jsonb)
    AS l(run_id uuid, step_path text, level text, message text, context jsonb)"""


_INSERT_LOGS: dict[LogSource, str] = {
    source: insert_logs_sql(tenant="$1", run_id="$2", lines="$3", source=source)
    for source in LogSource
}


async def insert_run_logs(
    conn: Executor,
    *,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    source: LogSource,
    lines: Sequence[LogLine],
) -> None:
    """Write `lines` for `run_id` (one statement; the pool's json codec encodes the lines)."""
    if lines:
        await conn.execute(_INSERT_LOGS[source], tenant, run_id, list(lines))


async def write_run_log(
    conn: Executor,
    source: LogSource,
    /,
    *,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    level: LogLevel,
    message: str,
    context: dict[str, Any] | None = None,
    step_path: str | None = None,
) -> None:
    """Write one line: `insert_run_logs` for the common case."""
    line = LogLine(level=level, message=message, context=context, step_path=step_path)
    await insert_run_logs(conn, tenant=tenant, run_id=run_id, source=source, lines=[line])
