"""The Postgres side of the claim-check codec (`claim_check.py`): `workflow_payload_claims`.

Service plumbing, kept out of the wire modules: every service builds one `PostgresClaimStore` on
its pool and hands it to `temporal.connect_temporal`.
"""

from __future__ import annotations

import uuid

import asyncpg

from stepwise_contract.claim_check import ClaimRef

# The tenant comes from the run row, so a payload is filed under the tenant that owns the run and
# a payload of a run that does not exist is not stored at all (the caller keeps it inline).
PUT_CLAIM = """
WITH run AS (SELECT tenant FROM workflow_runs WHERE run_id = $1), stored AS (
    INSERT INTO workflow_payload_claims (tenant, run_id, sha256, body, size_bytes)
    SELECT tenant, $1, $2, $3::bytea, $4 FROM run
    ON CONFLICT (tenant, run_id, sha256) DO NOTHING
)
SELECT tenant::text FROM run
"""
GET_CLAIM = """
SELECT body FROM workflow_payload_claims WHERE tenant = $1 AND run_id = $2 AND sha256 = $3
"""


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


class PostgresClaimStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def put(self, run_id: str, sha256: str, data: bytes) -> str | None:
        run = _uuid(run_id)
        if run is None:
            return None
        tenant: str | None = await self._pool.fetchval(PUT_CLAIM, run, sha256, data, len(data))
        return tenant

    async def get(self, ref: ClaimRef) -> bytes | None:
        tenant, run = _uuid(ref.tenant), _uuid(ref.run_id)
        if tenant is None or run is None:
            return None
        body: bytes | None = await self._pool.fetchval(GET_CLAIM, tenant, run, ref.sha256)
        return body
