"""The payload-schema registry (`workflow_payload_schemas`): built-ins (tenant NULL) and the
tenant's own schemas; a tenant's schema never shadows a built-in."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg

from stepwise_api.db import Conn

_COLUMNS = "schema_ref, schema_json, tenant IS NULL AS builtin, created_at, updated_at"


async def known_refs(conn: Conn, tenant: uuid.UUID) -> set[str]:
    records = await conn.fetch(
        "SELECT schema_ref FROM workflow_payload_schemas WHERE tenant = $1 OR tenant IS NULL",
        tenant,
    )
    return {r["schema_ref"] for r in records}


async def get_schema(conn: Conn, tenant: uuid.UUID, ref: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM workflow_payload_schemas"
        " WHERE schema_ref = $2 AND (tenant = $1 OR tenant IS NULL)"
        " ORDER BY tenant NULLS LAST LIMIT 1",
        tenant,
        ref,
    )


async def is_builtin(conn: Conn, ref: str) -> bool:
    found = await conn.fetchval(
        "SELECT 1 FROM workflow_payload_schemas WHERE tenant IS NULL AND schema_ref = $1", ref
    )
    return found is not None


async def put_schema(
    conn: Conn, tenant: uuid.UUID, ref: str, schema: Any
) -> tuple[asyncpg.Record, bool]:
    """Register or replace; returns the row and whether it was created."""
    record = await conn.fetchrow(
        "INSERT INTO workflow_payload_schemas (schema_id, tenant, schema_ref, schema_json)"
        " VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (tenant, schema_ref) WHERE tenant IS NOT NULL"
        " DO UPDATE SET schema_json = EXCLUDED.schema_json, updated_at = now()"
        f" RETURNING {_COLUMNS}, (xmax = 0) AS created",
        uuid.uuid4(),
        tenant,
        ref,
        schema,
    )
    assert record is not None
    return record, bool(record["created"])


async def list_schemas(
    conn: Conn, tenant: uuid.UUID, after: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {_COLUMNS} FROM workflow_payload_schemas"
        " WHERE (tenant = $1 OR tenant IS NULL) AND ($2::text IS NULL OR schema_ref > $2)"
        " ORDER BY schema_ref LIMIT $3",
        tenant,
        after,
        limit,
    )


async def payload_schema_json(conn: Conn, tenant: uuid.UUID, ref: str | None) -> Any:
    """The JSON Schema a published version pins for its payload (None = no schema)."""
    if not ref:
        return None
    record = await get_schema(conn, tenant, ref)
    return record["schema_json"] if record else None
