"""The invocation ledger `workflow_action_invocations`: every action call made idempotent (SPEC §5).

`begin` is one statement: it returns the output of a SUCCEEDED invocation under the same key (any
attempt) — the action then is not executed again, which covers a worker killed after the action
finished but before Temporal heard of it — or else records this attempt as STARTED. A STARTED or
FAILED row of the same attempt (an execution that died half-way) is taken over, so an action is
executed at least once and, once it has SUCCEEDED, never again for that key.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec

BEGIN = """
WITH hit AS (
    SELECT invocation_id, output_json FROM workflow_action_invocations
    WHERE tenant = $1 AND action_id = $4 AND action_version = $5 AND idempotency_key = $6
      AND status = 'SUCCEEDED'
    ORDER BY attempt DESC LIMIT 1
), started AS (
    INSERT INTO workflow_action_invocations (
        invocation_id, tenant, run_id, step_path, action_id, action_version, idempotency_key,
        attempt, status, input_json
    )
    SELECT $7, $1, $2, $3, $4, $5, $6, $8, 'STARTED', $9
    WHERE NOT EXISTS (SELECT 1 FROM hit)
    ON CONFLICT (tenant, action_id, action_version, idempotency_key, attempt) DO UPDATE
        SET status = 'STARTED', input_json = EXCLUDED.input_json, output_json = NULL,
            error_json = NULL, completed_at = NULL, updated_at = now()
    RETURNING invocation_id
)
SELECT (SELECT invocation_id FROM hit) AS hit_id,
       (SELECT output_json FROM hit) AS hit_output,
       (SELECT invocation_id FROM started) AS started_id,
       -- a STARTED row lost in a Postgres crash changes nothing (the attempt is taken over
       -- anyway), so its commit does not wait for the WAL flush; SUCCEEDED/FAILED do
       set_config('synchronous_commit', 'off', true) AS relaxed_commit
"""

SUCCEED = """
UPDATE workflow_action_invocations
SET status = 'SUCCEEDED', output_json = $3, completed_at = now(), updated_at = now()
WHERE tenant = $1 AND invocation_id = $2
"""

FAIL = """
UPDATE workflow_action_invocations
SET status = 'FAILED', error_json = $3, completed_at = now(), updated_at = now()
WHERE tenant = $1 AND invocation_id = $2
"""


class Begun(msgspec.Struct, frozen=True, kw_only=True):
    invocation_id: str
    # set when a SUCCEEDED invocation already exists for the key
    replayed: bool = False
    output: Any = None


class Ledger:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def begin(
        self,
        *,
        tenant_id: str,
        run_id: str,
        step_path: str,
        action_id: str,
        version: int,
        idempotency_key: str,
        attempt: int,
        recorded_input: Any,
    ) -> Begun:
        row = await self._pool.fetchrow(
            BEGIN,
            uuid.UUID(tenant_id), uuid.UUID(run_id), step_path, action_id, version,
            idempotency_key, uuid.uuid4(), attempt, recorded_input,
        )  # fmt: skip
        assert row is not None
        if row["hit_id"] is not None:
            return Begun(invocation_id=str(row["hit_id"]), replayed=True, output=row["hit_output"])
        return Begun(invocation_id=str(row["started_id"]))

    async def succeed(self, tenant_id: str, invocation_id: str, output: Any) -> None:
        await self._pool.execute(SUCCEED, uuid.UUID(tenant_id), uuid.UUID(invocation_id), output)

    async def fail(self, tenant_id: str, invocation_id: str, error: Any) -> None:
        await self._pool.execute(FAIL, uuid.UUID(tenant_id), uuid.UUID(invocation_id), error)
