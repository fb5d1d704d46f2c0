"""`{"$blobRef": id}` placeholders of runs recorded before the claim-check codec.

Such runs held their large values in `workflow_payload_blobs` and carried placeholders in
workflow state. A run still in flight across the upgrade replays its history (placeholders in
recorded results) and its next action input or final result may still hold them: they are
resolved here, against that run's own rows only. Nothing writes placeholders any more; large
values now travel through the codec (`stepwise_contract.claim_check`).
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import asyncpg

BLOB_REF_KEY: Final = "$blobRef"

SELECT_BLOBS = """
SELECT blob_id::text AS blob_id, body FROM workflow_payload_blobs
WHERE tenant = $1 AND run_id = $2 AND blob_id::text = ANY($3::text[])
"""


def is_blob_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get(BLOB_REF_KEY), str)


def _collect(value: Any, ids: list[str]) -> None:
    if is_blob_ref(value):
        ids.append(value[BLOB_REF_KEY])
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, ids)
    elif isinstance(value, list):
        for v in value:
            _collect(v, ids)


def _substitute(value: Any, bodies: dict[str, Any]) -> Any:
    if is_blob_ref(value) and value[BLOB_REF_KEY] in bodies:
        return bodies[value[BLOB_REF_KEY]]
    if isinstance(value, dict):
        return {k: _substitute(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, bodies) for v in value]
    return value


class LegacyBlobs:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def materialize(self, tenant_id: str, run_id: str, value: Any) -> Any:
        """`value` with every placeholder of this run replaced by its stored body. A lookalike
        that names no blob of this run (tenant data shaped like a placeholder) stays as it is."""
        ids: list[str] = []
        _collect(value, ids)
        if not ids:
            return value
        rows = await self._pool.fetch(SELECT_BLOBS, uuid.UUID(tenant_id), uuid.UUID(run_id), ids)
        if not rows:
            return value
        return _substitute(value, {r["blob_id"]: r["body"] for r in rows})
