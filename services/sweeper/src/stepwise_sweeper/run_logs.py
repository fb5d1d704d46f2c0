"""Operator-visible run log rows written by the sweeper (`workflow_run_logs`, source `sweeper`)."""

from __future__ import annotations

import uuid
from typing import Any

from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.launch import Executor

INSERT_LOG = """
INSERT INTO workflow_run_logs (log_id, tenant, run_id, step_path, level, message, context_json,
                               source)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
"""


async def write_run_log(
    conn: Executor,
    *,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    level: LogLevel,
    message: str,
    context: dict[str, Any] | None = None,
    step_path: str | None = None,
) -> None:
    await conn.execute(
        INSERT_LOG,
        uuid.uuid4(), tenant, run_id, step_path, level.value, message, context,
        LogSource.SWEEPER.value,
    )  # fmt: skip
