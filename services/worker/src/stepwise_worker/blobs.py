"""Large values pass through Temporal by reference (SPEC §5).

A value whose JSON exceeds `INLINE_LIMIT` (256 KiB) is split: its largest parts go to
`workflow_payload_blobs` and are replaced by `{"$blobRef": "<uuid>"}` until the rest fits, so the
small parts (an HTTP status, an id) stay visible to expressions and only the bulk travels by
reference. Workflow code treats a ref as an opaque value it can move and pass to actions; the
action activity materializes refs in its input. Anything over `max_bytes` (10 MiB by default)
is a non-retryable `ValidationError`, never an endless retry.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import asyncpg
import msgspec

from stepwise_worker.messages import BLOB_REF_KEY

INLINE_LIMIT: Final = 256 * 1024
DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024
# externalizing something this small gains nothing: the ref itself is ~60 bytes
_MIN_EXTERNAL_BYTES: Final = 1024

_encode = msgspec.json.Encoder().encode

INSERT_BLOB = """
INSERT INTO workflow_payload_blobs (blob_id, tenant, run_id, body, size_bytes)
SELECT b.blob_id, $1, $2, b.body, b.size_bytes
FROM jsonb_to_recordset($3::jsonb) AS b(blob_id uuid, body jsonb, size_bytes int)
"""
SELECT_BLOBS = """
SELECT blob_id::text AS blob_id, body FROM workflow_payload_blobs
WHERE tenant = $1 AND blob_id = ANY($2::uuid[])
"""


class PayloadTooLarge(ValueError):
    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def size_of(value: Any) -> int:
    return len(_encode(value))


def is_blob_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and BLOB_REF_KEY in value


def has_blob_refs(value: Any) -> bool:
    if is_blob_ref(value):
        return True
    if isinstance(value, dict):
        return any(has_blob_refs(v) for v in value.values())
    if isinstance(value, list):
        return any(has_blob_refs(v) for v in value)
    return False


def _split(value: Any, size: int, out: list[tuple[str, Any, int]]) -> Any:
    """Replace the largest parts of `value` by refs until it fits; collect the parts in `out`."""
    if size <= INLINE_LIMIT:
        return value
    if isinstance(value, dict | list) and value:
        keys = list(value.keys()) if isinstance(value, dict) else list(range(len(value)))
        copy: Any = dict(value) if isinstance(value, dict) else list(value)
        sizes = {k: size_of(copy[k]) for k in keys}
        remaining = size
        for key in sorted(keys, key=lambda k: sizes[k], reverse=True):
            if remaining <= INLINE_LIMIT or sizes[key] < _MIN_EXTERNAL_BYTES:
                break
            blob_id = str(uuid.uuid4())
            out.append((blob_id, copy[key], sizes[key]))
            ref = {BLOB_REF_KEY: blob_id}
            copy[key] = ref
            remaining -= sizes[key] - size_of(ref)
        if remaining <= INLINE_LIMIT:
            return copy
        value = copy
    blob_id = str(uuid.uuid4())
    out.append((blob_id, value, size))
    return {BLOB_REF_KEY: blob_id}


class BlobStore:
    def __init__(self, pool: asyncpg.Pool, *, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._pool = pool
        self.max_bytes = max_bytes

    def check_size(self, value: Any, what: str) -> int:
        size = size_of(value)
        if size > self.max_bytes:
            raise PayloadTooLarge(size, self.max_bytes, what)
        return size

    async def externalize(
        self, tenant_id: str, run_id: str | None, value: Any, *, what: str = "payload"
    ) -> Any:
        """`value` with its bulk moved to blobs so that what remains is at most 256 KiB."""
        size = self.check_size(value, what)
        if size <= INLINE_LIMIT:
            return value
        parts: list[tuple[str, Any, int]] = []
        small = _split(value, size, parts)
        rows = [{"blob_id": b, "body": body, "size_bytes": n} for b, body, n in parts]
        await self._pool.execute(
            INSERT_BLOB, uuid.UUID(tenant_id), uuid.UUID(run_id) if run_id else None, rows
        )
        return small

    async def materialize(self, tenant_id: str, value: Any) -> Any:
        """`value` with every `{"$blobRef": id}` replaced by the stored body."""
        if not has_blob_refs(value):
            return value
        ids: list[str] = []
        _collect(value, ids)
        rows = await self._pool.fetch(
            SELECT_BLOBS, uuid.UUID(tenant_id), [uuid.UUID(i) for i in ids]
        )
        bodies = {r["blob_id"]: r["body"] for r in rows}
        missing = [i for i in ids if i not in bodies]
        if missing:
            raise LookupError(f"payload blob {missing[0]} not found")
        return _substitute(value, bodies)


def _collect(value: Any, ids: list[str]) -> None:
    if is_blob_ref(value):
        ids.append(str(value[BLOB_REF_KEY]))
    elif isinstance(value, dict):
        for v in value.values():
            _collect(v, ids)
    elif isinstance(value, list):
        for v in value:
            _collect(v, ids)


def _substitute(value: Any, bodies: dict[str, Any]) -> Any:
    if is_blob_ref(value):
        return bodies[str(value[BLOB_REF_KEY])]
    if isinstance(value, dict):
        return {k: _substitute(v, bodies) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, bodies) for v in value]
    return value
