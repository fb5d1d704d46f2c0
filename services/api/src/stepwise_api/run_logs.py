"""Operator-visible run log lines written by the API (`workflow_run_logs`, source `api`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from stepwise_contract.enums import LogLevel, LogSource

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
