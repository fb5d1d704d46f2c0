"""`store.*@1`: the tenant key/value store on `workflow_data_store` (SPEC §6).

Semantics: a new key gets revision 1 and every write adds 1; `ifRevision: 0` creates only;
`ifRevision: N` writes only over a live row at revision N; a mismatch is an `ActionError` with code
`REVISION_CONFLICT`. A row with `expires_at <= now()` is absent for every action: `get`/`list` do
not see it, `delete` reports `deleted: false`, and `set`/`increment` overwrite it as a brand-new
key (revision 1, `created: true`).

Every action is one SQL statement (the conflict path adds one read for the error details), so no
lock outlives a statement: the sweeper deletes expired rows concurrently with `SKIP LOCKED` and
must never wait on us. Time is the database's `now()`, the same clock the sweeper uses.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec

from stepwise_worker.actions.base import ActionContext, ActionFailure, JSONObject

_LIVE: Final = "(expires_at IS NULL OR expires_at > now())"


def _expiry(ttl_param: str) -> str:
    """SQL for `expires_at` from a nullable ttl-in-seconds parameter."""
    return (
        f"CASE WHEN {ttl_param}::int IS NULL THEN NULL"
        f" ELSE now() + {ttl_param}::int * interval '1 second' END"
    )


# Inserted fresh, or written over an expired row as if it were fresh; $9 = create only.
_SET_UPSERT: Final = f"""
INSERT INTO workflow_data_store AS s
    (store_id, tenant, namespace, key, value, value_type, revision, expires_at, created_by_run_id)
VALUES ($1, $2, $3, $4, $5::jsonb, $6, 1, {_expiry("$7")}, $8)
ON CONFLICT (tenant, namespace, key) DO UPDATE SET
    value = EXCLUDED.value,
    value_type = EXCLUDED.value_type,
    expires_at = EXCLUDED.expires_at,
    revision = CASE WHEN s.expires_at <= now() THEN 1 ELSE s.revision + 1 END,
    created_by_run_id = CASE WHEN s.expires_at <= now()
        THEN EXCLUDED.created_by_run_id ELSE s.created_by_run_id END,
    created_at = CASE WHEN s.expires_at <= now() THEN now() ELSE s.created_at END,
    updated_at = now()
WHERE NOT $9::bool OR s.expires_at <= now()
RETURNING revision
"""

# ifRevision N > 0 never creates: only a live row at exactly that revision is written.
_SET_IF_REVISION: Final = f"""
UPDATE workflow_data_store SET
    value = $4::jsonb, value_type = $5, revision = revision + 1, updated_at = now(),
    expires_at = {_expiry("$6")}
WHERE tenant = $1 AND namespace = $2 AND key = $3 AND revision = $7 AND {_LIVE}
RETURNING revision
"""

_CURRENT_REVISION: Final = f"""
SELECT revision FROM workflow_data_store
WHERE tenant = $1 AND namespace = $2 AND key = $3 AND {_LIVE}
"""

_GET: Final = f"""
SELECT value, revision, expires_at FROM workflow_data_store
WHERE tenant = $1 AND namespace = $2 AND key = $3 AND {_LIVE}
"""

# The row is removed even when expired (saves the sweeper the work) but reported as absent.
_DELETE: Final = f"""
DELETE FROM workflow_data_store WHERE tenant = $1 AND namespace = $2 AND key = $3
RETURNING {_LIVE} AS live
"""

# The WHERE runs before the SET, so `s.value::numeric` only ever sees a JSON number. Without a
# ttl a live counter keeps its expiry (a rate window keeps ticking); an expired one restarts.
_INCREMENT: Final = f"""
INSERT INTO workflow_data_store AS s
    (store_id, tenant, namespace, key, value, value_type, revision, expires_at, created_by_run_id)
VALUES ($1, $2, $3, $4, $5::jsonb, 'number', 1, {_expiry("$6")}, $7)
ON CONFLICT (tenant, namespace, key) DO UPDATE SET
    value = CASE WHEN s.expires_at <= now()
        THEN EXCLUDED.value ELSE to_jsonb(s.value::numeric + EXCLUDED.value::numeric) END,
    value_type = 'number',
    expires_at = CASE WHEN $6::int IS NOT NULL OR s.expires_at <= now()
        THEN EXCLUDED.expires_at ELSE s.expires_at END,
    revision = CASE WHEN s.expires_at <= now() THEN 1 ELSE s.revision + 1 END,
    created_by_run_id = CASE WHEN s.expires_at <= now()
        THEN EXCLUDED.created_by_run_id ELSE s.created_by_run_id END,
    created_at = CASE WHEN s.expires_at <= now() THEN now() ELSE s.created_at END,
    updated_at = now()
WHERE s.expires_at <= now() OR jsonb_typeof(s.value) = 'number'
RETURNING value, revision
"""

# Keyset pagination on key; one extra row tells whether another page exists.
_LIST: Final = f"""
SELECT key, value, revision, expires_at FROM workflow_data_store
WHERE tenant = $1 AND namespace = $2 AND {_LIVE}
  AND ($3::text IS NULL OR starts_with(key, $3::text))
  AND ($4::text IS NULL OR key > $4::text)
ORDER BY key
LIMIT $5
"""

_TRANSIENT: Final = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    # asyncpg raises this (not a connection error) for a pooled connection whose backend was
    # terminated by the server (pg_terminate_backend, failover): seen in the Postgres-blip fault
    # test and reproduced with a bare pool (~1 in 40 terminations).
    asyncpg.InternalClientError,
    asyncpg.InsufficientResourcesError,
    asyncpg.TransactionRollbackError,
    asyncpg.OperatorInterventionError,
)

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


@asynccontextmanager
async def _database(ctx: ActionContext) -> AsyncIterator[asyncpg.Pool]:
    """The pool, with connection-level failures turned into retryable `TransientError`s."""
    if ctx.pool is None:
        raise ActionFailure("store actions need a database", code="STORE_UNAVAILABLE")
    try:
        yield ctx.pool
    except _TRANSIENT as exc:
        raise ActionFailure(
            f"data store unavailable: {exc}", category="TransientError", code="STORE_UNAVAILABLE"
        ) from exc


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "json"


def _iso(ts: datetime | None) -> str | None:
    return None if ts is None else ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _check_size(value: Any, ctx: ActionContext) -> None:
    size = len(_encode(value))
    limit = ctx.settings.store_max_value_bytes
    if size > limit:
        raise ActionFailure(
            f"store value is {size} bytes; the limit is {limit}",
            category="ValidationError",
            code="VALUE_TOO_LARGE",
            details={"size": size, "limit": limit},
        )


async def store_set(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    ns, key, value = payload["namespace"], payload["key"], payload["value"]
    ttl: int | None = payload.get("ttlSeconds")
    if_revision: int | None = payload.get("ifRevision")
    _check_size(value, ctx)
    async with _database(ctx) as pool:
        if if_revision is None or if_revision == 0:
            revision = await pool.fetchval(
                _SET_UPSERT,
                uuid.uuid4(),
                ctx.tenant_id,
                ns,
                key,
                value,
                _value_type(value),
                ttl,
                ctx.run_id,
                if_revision == 0,
            )
        else:
            revision = await pool.fetchval(
                _SET_IF_REVISION,
                ctx.tenant_id,
                ns,
                key,
                value,
                _value_type(value),
                ttl,
                if_revision,
            )
        if revision is None:
            current = await pool.fetchval(_CURRENT_REVISION, ctx.tenant_id, ns, key)
            raise ActionFailure(
                f"store key {ns}/{key} is at revision {current}, expected {if_revision}",
                code="REVISION_CONFLICT",
                details={"expectedRevision": if_revision, "currentRevision": current},
            )
    # revision 1 is only ever written to a key that was absent (or expired)
    return {"revision": revision, "created": revision == 1}


async def store_get(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    async with _database(ctx) as pool:
        row = await pool.fetchrow(_GET, ctx.tenant_id, payload["namespace"], payload["key"])
    if row is None:
        return {"found": False, "value": None, "revision": None, "expiresAt": None}
    return {
        "found": True,
        "value": row["value"],
        "revision": row["revision"],
        "expiresAt": _iso(row["expires_at"]),
    }


async def store_delete(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    async with _database(ctx) as pool:
        live = await pool.fetchval(_DELETE, ctx.tenant_id, payload["namespace"], payload["key"])
    return {"deleted": bool(live)}


async def store_increment(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    ns, key = payload["namespace"], payload["key"]
    by = payload.get("by", 1)
    async with _database(ctx) as pool:
        row = await pool.fetchrow(
            _INCREMENT,
            uuid.uuid4(),
            ctx.tenant_id,
            ns,
            key,
            by,
            payload.get("ttlSeconds"),
            ctx.run_id,
        )
    if row is None:
        raise ActionFailure(
            f"store key {ns}/{key} does not hold a number",
            code="NON_NUMERIC_VALUE",
            details={"namespace": ns, "key": key},
        )
    return {"value": row["value"], "revision": row["revision"]}


def _encode_cursor(key: str) -> str:
    return base64.urlsafe_b64encode(_encode({"after": key})).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        decoded = _decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        decoded = None
    if not isinstance(decoded, dict) or not isinstance(decoded.get("after"), str):
        raise ActionFailure(
            "store.list cursor is not one this action returned",
            category="ValidationError",
            code="INVALID_CURSOR",
        )
    after: str = decoded["after"]
    return after


async def store_list(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    limit: int = payload.get("limit", 100)
    cursor = payload.get("cursor")
    after = None if cursor is None else _decode_cursor(cursor)
    async with _database(ctx) as pool:
        rows = await pool.fetch(
            _LIST, ctx.tenant_id, payload["namespace"], payload.get("prefix"), after, limit + 1
        )
    page = rows[:limit]
    items = [
        {
            "key": r["key"],
            "value": r["value"],
            "revision": r["revision"],
            "expiresAt": _iso(r["expires_at"]),
        }
        for r in page
    ]
    next_cursor = _encode_cursor(page[-1]["key"]) if len(rows) > limit else None
    return {"items": items, "nextCursor": next_cursor}
