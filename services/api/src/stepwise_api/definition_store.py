"""Workflow definitions: drafts, validation and immutable published versions (SPEC §3, §7).

The server owns the definition `id` (= the workflow id). Publishing stores the draft as an
immutable `workflow_definition_versions` row with its canonical hash and the resolved payload
schema, and updates the definition's status, latest version and trigger (the router's index).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import msgspec
from stepwise_contract.actions import ActionCatalog
from stepwise_contract.hashing import definition_hash
from stepwise_contract.validation import ValidationResult, validate_definition

from stepwise_api import schema_store
from stepwise_api.db import Conn, Tx
from stepwise_api.errors import ApiError

INT32_MAX = 2**31 - 1
SUMMARY_COLUMNS = """workflow_id, key, name, description, payload_schema_ref, status, is_paused,
    concurrency_limit, draft_version, latest_published_version, trigger, trigger_event_name,
    validation_status, validated_at, created_at, updated_at"""
DETAIL_COLUMNS = SUMMARY_COLUMNS + ", draft_definition, validation_errors, validation_warnings"
VERSION_COLUMNS = """version_id, workflow_id, version, definition_json, payload_schema_json,
    definition_hash, published_at"""


def with_id(raw: Any, workflow_id: uuid.UUID) -> Any:
    """The server sets the definition's `id` to the workflow id."""
    if isinstance(raw, dict):
        return {**raw, "id": str(workflow_id)}
    return raw


def validation_json(result: ValidationResult) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(result)
    return out


async def validate(
    conn: Conn, tenant: uuid.UUID, raw: Any, catalog: ActionCatalog
) -> ValidationResult:
    schemas = await schema_store.known_refs(conn, tenant)
    # a child is named by its id or its key (the worker resolves both)
    workflows = await conn.fetch(
        "SELECT workflow_id, key FROM workflow_definitions WHERE tenant = $1", tenant
    )
    secrets = await conn.fetch("SELECT name FROM tenant_secrets WHERE tenant = $1", tenant)
    # json on Stepwise's own databases; the reference's jsonb on an adopted one (never retyped)
    stored_as = await conn.fetchval(
        "SELECT atttypid::regtype::text FROM pg_attribute"
        " WHERE attrelid = 'workflow_definition_versions'::regclass AND attname = 'definition_json'"
    )
    result, _ = validate_definition(
        raw,
        catalog=catalog,
        known_schemas=schemas,
        known_workflows={str(r["workflow_id"]) for r in workflows}
        | {r["key"] for r in workflows if r["key"]},
        known_secrets={r["name"] for r in secrets},
        keeps_key_order=stored_as != "jsonb",
    )
    return result


def _columns_from(raw: Any) -> tuple[str, str | None, str | None]:
    """name, description, payloadSchemaRef of a (possibly invalid) draft, for display."""
    if not isinstance(raw, dict):
        return "", None, None
    name = raw.get("name")
    description = raw.get("description")
    ref = raw.get("payloadSchemaRef")
    return (
        name if isinstance(name, str) else "",
        description if isinstance(description, str) else None,
        ref if isinstance(ref, str) else None,
    )


async def create(
    conn: Conn,
    tenant: uuid.UUID,
    raw: Any,
    key: str | None,
    catalog: ActionCatalog,
) -> tuple[uuid.UUID, int, ValidationResult]:
    workflow_id = uuid.uuid4()
    draft = with_id(raw, workflow_id)
    result = await validate(conn, tenant, draft, catalog)
    name, description, ref = _columns_from(draft)
    try:
        await conn.execute(
            "INSERT INTO workflow_definitions (workflow_id, tenant, key, name, description,"
            " payload_schema_ref, draft_definition, draft_version, status, validation_status,"
            " validation_errors, validation_warnings, validated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 1, 'draft', $8, $9, $10, now())",
            workflow_id, tenant, key, name, description, ref, draft, result.status,
            msgspec.to_builtins(result.errors), msgspec.to_builtins(result.warnings),
        )  # fmt: skip
    except asyncpg.UniqueViolationError:
        raise ApiError(
            409, "DEFINITION_KEY_EXISTS", f"a workflow with key {key!r} already exists"
        ) from None
    return workflow_id, 1, result


async def replace_draft(
    conn: Conn, tenant: uuid.UUID, workflow_id: uuid.UUID, raw: Any, catalog: ActionCatalog
) -> tuple[int, ValidationResult]:
    await require(conn, tenant, workflow_id)
    draft = with_id(raw, workflow_id)
    result = await validate(conn, tenant, draft, catalog)
    name, description, ref = _columns_from(draft)
    version = await conn.fetchval(
        "UPDATE workflow_definitions SET draft_definition = $3, draft_version = draft_version + 1,"
        " name = $4, description = $5, payload_schema_ref = $6, validation_status = $7,"
        " validation_errors = $8, validation_warnings = $9, validated_at = now(),"
        " updated_at = now()"
        " WHERE tenant = $1 AND workflow_id = $2 RETURNING draft_version",
        tenant, workflow_id, draft, name, description, ref, result.status,
        msgspec.to_builtins(result.errors), msgspec.to_builtins(result.warnings),
    )  # fmt: skip
    if version is None:
        raise _missing(workflow_id)
    return int(version), result


def _missing(workflow_id: uuid.UUID) -> ApiError:
    return ApiError(404, "WORKFLOW_NOT_FOUND", f"workflow {workflow_id} not found")


async def require(
    conn: Conn, tenant: uuid.UUID, workflow_id: uuid.UUID, *, lock: bool = False
) -> asyncpg.Record:
    record = await conn.fetchrow(
        f"SELECT {DETAIL_COLUMNS} FROM workflow_definitions WHERE tenant = $1 AND workflow_id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant,
        workflow_id,
    )
    if record is None:
        raise _missing(workflow_id)
    return record


async def detail(conn: Conn, tenant: uuid.UUID, workflow_id: uuid.UUID) -> dict[str, Any]:
    record = await require(conn, tenant, workflow_id)
    versions = await conn.fetch(
        "SELECT version, definition_hash, published_at FROM workflow_definition_versions"
        " WHERE tenant = $1 AND workflow_id = $2 ORDER BY version DESC",
        tenant,
        workflow_id,
    )
    return {**dict(record), "versions": [dict(v) for v in versions]}


async def patch(
    conn: Conn,
    tenant: uuid.UUID,
    workflow_id: uuid.UUID,
    is_paused: bool | None,
    concurrency_limit: int | msgspec.UnsetType | None,
) -> None:
    if isinstance(concurrency_limit, int) and not 1 <= concurrency_limit <= INT32_MAX:
        raise ApiError(
            400, "INVALID_BODY", f"concurrencyLimit must be 1..{INT32_MAX} (or null: no limit)"
        )
    keep_limit = concurrency_limit is msgspec.UNSET
    status = await conn.execute(
        "UPDATE workflow_definitions SET is_paused = COALESCE($3, is_paused),"
        " concurrency_limit = CASE WHEN $4 THEN concurrency_limit ELSE $5::int END,"
        " updated_at = now() WHERE tenant = $1 AND workflow_id = $2",
        tenant, workflow_id, is_paused, keep_limit,
        None if isinstance(concurrency_limit, msgspec.UnsetType) else concurrency_limit,
    )  # fmt: skip
    if status.endswith(" 0"):
        raise _missing(workflow_id)


async def publish(
    conn: Tx,
    tenant: uuid.UUID,
    workflow_id: uuid.UUID,
    version: int | None,
    catalog: ActionCatalog,
) -> tuple[int, ValidationResult]:
    """Publish the draft as `version` (default latest + 1); call inside a transaction."""
    record = await require(conn, tenant, workflow_id, lock=True)
    draft = with_id(record["draft_definition"], workflow_id)
    result = await validate(conn, tenant, draft, catalog)
    if not result.ok:
        raise ApiError(
            409,
            "WORKFLOW_VALIDATION_FAILED",
            "the draft has validation errors; fix them before publishing",
            errors=msgspec.to_builtins(result.errors),
            validation=validation_json(result),
        )
    latest = record["latest_published_version"] or 0
    number = latest + 1 if version is None else version
    if not 1 <= number <= INT32_MAX:
        raise ApiError(400, "INVALID_BODY", f"version must be 1..{INT32_MAX}")
    if number <= latest:
        raise ApiError(
            409,
            "VERSION_EXISTS",
            f"version {number} is not newer than the latest published version {latest}",
        )
    definition_json = {**draft, "version": number}
    trigger = definition_json.get("trigger")
    schema = await schema_store.payload_schema_json(
        conn, tenant, definition_json.get("payloadSchemaRef")
    )
    await conn.execute(
        "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
        " definition_json, payload_schema_json, definition_hash)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        uuid.uuid4(), tenant, workflow_id, number, definition_json, schema,
        definition_hash(definition_json),
    )  # fmt: skip
    await conn.execute(
        "UPDATE workflow_definitions SET status = 'published', latest_published_version = $3,"
        " trigger = $4, trigger_event_name = $5, validation_status = $6, validation_errors = $7,"
        " validation_warnings = $8, validated_at = now(), updated_at = now()"
        " WHERE tenant = $1 AND workflow_id = $2",
        tenant, workflow_id, number, trigger,
        trigger.get("eventName") if isinstance(trigger, dict) else None, result.status,
        msgspec.to_builtins(result.errors), msgspec.to_builtins(result.warnings),
    )  # fmt: skip
    return number, result


async def list_definitions(
    conn: Conn,
    tenant: uuid.UUID,
    status: str | None,
    after: tuple[Any, str] | None,
    limit: int,
) -> list[asyncpg.Record]:
    """A page of definitions, each with `runs_24h` and `failed_24h`: the runs started in the last
    24 hours and how many of those failed."""
    return await conn.fetch(
        f"SELECT {SUMMARY_COLUMNS}, recent.runs_24h, recent.failed_24h"
        " FROM workflow_definitions d"
        " CROSS JOIN LATERAL (SELECT count(*) AS runs_24h,"
        " count(*) FILTER (WHERE r.status = 'FAILED') AS failed_24h FROM workflow_runs r"
        " WHERE r.tenant = d.tenant AND r.workflow_id = d.workflow_id"
        " AND r.started_at > now() - interval '24 hours') recent"
        " WHERE d.tenant = $1"
        " AND ($2::text IS NULL OR d.status = $2)"
        " AND ($3::timestamptz IS NULL OR (d.created_at, d.workflow_id) < ($3, $4::uuid))"
        " ORDER BY d.created_at DESC, d.workflow_id DESC LIMIT $5",
        tenant,
        status,
        after[0] if after else None,
        after[1] if after else None,
        limit,
    )


async def list_versions(
    conn: Conn, tenant: uuid.UUID, workflow_id: uuid.UUID, before: int | None, limit: int
) -> list[asyncpg.Record]:
    await require(conn, tenant, workflow_id)
    return await conn.fetch(
        f"SELECT {VERSION_COLUMNS} FROM workflow_definition_versions"
        " WHERE tenant = $1 AND workflow_id = $2 AND ($3::int IS NULL OR version < $3)"
        " ORDER BY version DESC LIMIT $4",
        tenant,
        workflow_id,
        before,
        limit,
    )


async def get_version(
    conn: Conn, tenant: uuid.UUID, workflow_id: uuid.UUID, version: int
) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {VERSION_COLUMNS} FROM workflow_definition_versions"
        " WHERE tenant = $1 AND workflow_id = $2 AND version = $3",
        tenant,
        workflow_id,
        version,
    )
