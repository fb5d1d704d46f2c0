"""Test support: seed a published definition and launch runs without the API.

The API owns publishing; tests of the worker insert the rows it would have written (tenant,
definition, immutable version with its hash) and launch through `stepwise_contract.launch`, the
same code every launcher uses.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import asyncpg
import msgspec
from stepwise_contract.launch import insert_run, launch
from stepwise_contract.names import workflow_id_for
from stepwise_contract.payloads import RunInput
from temporalio.client import Client, WorkflowHandle


def definition_hash(definition: Any) -> str:
    """sha256 of the canonical (key-sorted) JSON of a definition."""
    return hashlib.sha256(msgspec.json.encode(definition, order="sorted")).hexdigest()


async def ensure_tenant(pool: asyncpg.Pool, tenant_id: str, *, name: str = "test") -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        uuid.UUID(tenant_id), name,
    )  # fmt: skip


async def publish_definition(
    pool: asyncpg.Pool, tenant_id: str, definition: dict[str, Any], *, version: int = 1
) -> tuple[str, int, str]:
    """Insert a published definition; returns (workflow_id, version, definition_hash)."""
    await ensure_tenant(pool, tenant_id)
    workflow_id = str(uuid.uuid4())
    body = {**definition, "id": workflow_id, "version": version}
    digest = definition_hash(body)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO workflow_definitions (workflow_id, tenant, name, draft_definition,"
            " status, latest_published_version) VALUES ($1, $2, $3, $4, 'published', $5)",
            uuid.UUID(workflow_id), uuid.UUID(tenant_id), body.get("name", "test"), body, version,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
            " definition_json, definition_hash) VALUES ($1, $2, $3, $4, $5, $6)",
            uuid.uuid4(), uuid.UUID(tenant_id), uuid.UUID(workflow_id), version, body, digest,
        )  # fmt: skip
    return workflow_id, version, digest


async def launch_run(
    pool: asyncpg.Pool,
    client: Client,
    *,
    tenant_id: str,
    workflow_id: str,
    version: int,
    definition_hash: str | None,
    payload: Any = None,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Insert the run row and start it; returns (run_id, Temporal handle)."""
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        run_id=run_id,
        tenant=uuid.UUID(tenant_id),
        workflow_id=uuid.UUID(workflow_id),
        workflow_version=version,
        input_json=payload if payload is not None else {},
        definition_hash=definition_hash,
    )
    run_input = RunInput(
        run_id=str(run_id),
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        workflow_version=version,
        root_run_id=str(run_id),
    )
    started = await launch(pool, client, run_input)
    if started is None:
        raise RuntimeError(f"run {run_id} could not be started")
    return str(run_id), client.get_workflow_handle(workflow_id_for(str(run_id)))


async def run_definition(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    definition: dict[str, Any],
    payload: Any = None,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Publish `definition` for the tenant and launch one run of it."""
    workflow_id, version, digest = await publish_definition(pool, tenant_id, definition)
    return await launch_run(
        pool,
        client,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=version,
        definition_hash=digest,
        payload=payload,
    )
