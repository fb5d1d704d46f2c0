"""Operator-visible run log lines written by the API (`workflow_run_logs`, source `api`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.launch import INSERT_RUN

from stepwise_api.db import Conn


@dataclass(frozen=True)
class LogLine:
    level: LogLevel
    message: str
    context: dict[str, Any] | None = None
    # None = the run the caller is writing for
    run_id: uuid.UUID | None = None


async def insert_logs(
    conn: Conn,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    lines: Sequence[LogLine],
) -> None:
    await conn.executemany(
        "INSERT INTO workflow_run_logs (log_id, tenant, run_id, level, message, context_json,"
        " source) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            (uuid.uuid4(), tenant, line.run_id or run_id, line.level.value, line.message,
             line.context, LogSource.API.value)
            for line in lines
        ],
    )  # fmt: skip


# A new run's row and its first log lines in one statement (atomic without a transaction block,
# one round trip): `INSERT_RUN`'s $1..$16, then the lines as a JSON array ($17, `log_rows`).
INSERT_RUN_WITH_LOGS = f"""
WITH run AS ({INSERT_RUN.strip()} RETURNING run_id, tenant)
INSERT INTO workflow_run_logs (log_id, tenant, run_id, level, message, context_json, source)
SELECT l.log_id, run.tenant, coalesce(l.run_id, run.run_id), l.level, l.message, l.context_json,
       '{LogSource.API.value}'
FROM run, jsonb_to_recordset($17::jsonb)
    AS l(log_id uuid, run_id uuid, level text, message text, context_json jsonb)
"""


def log_rows(lines: Sequence[LogLine]) -> list[dict[str, Any]]:
    """The `$17` of `INSERT_RUN_WITH_LOGS`; a line without a run id is the new run's."""
    return [
        {"log_id": str(uuid.uuid4()), "run_id": str(line.run_id) if line.run_id else None,
         "level": line.level.value, "message": line.message, "context_json": line.context}
        for line in lines
    ]  # fmt: skip
