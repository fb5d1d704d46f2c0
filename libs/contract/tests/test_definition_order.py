"""Definitions keep their authored key order in Postgres (transform.assign runs in that order)."""

from __future__ import annotations

import json
import uuid

import asyncpg
from stepwise_contract.validation import jsonb_key_order


async def test_definition_documents_keep_key_order(pool: asyncpg.Pool) -> None:
    tenant, workflow_id = uuid.uuid4(), uuid.uuid4()
    assign = {"zeta": {"$expr": "1"}, "a": {"$expr": "zeta + 1"}, "mm": {"$expr": "a + 1"}}
    definition = {
        "name": "ordered",
        "steps": [{"id": "s", "type": "transform.assign", "config": {"assign": assign}}],
    }
    await pool.execute(
        "INSERT INTO workflow_definitions (workflow_id, tenant, name, draft_definition)"
        " VALUES ($1, $2, 'ordered', $3)",
        workflow_id,
        tenant,
        definition,
    )
    await pool.execute(
        "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
        " definition_json, definition_hash) VALUES ($1, $2, $3, 1, $4, 'h')",
        uuid.uuid4(),
        tenant,
        workflow_id,
        definition,
    )
    draft = await pool.fetchval(
        "SELECT draft_definition FROM workflow_definitions WHERE workflow_id = $1", workflow_id
    )
    version = await pool.fetchval(
        "SELECT definition_json FROM workflow_definition_versions WHERE workflow_id = $1",
        workflow_id,
    )
    for stored in (draft, version):
        assert list(stored["steps"][0]["config"]["assign"]) == ["zeta", "a", "mm"]


async def test_jsonb_key_order_is_postgres_order(pool: asyncpg.Pool) -> None:
    keys = ["zeta", "a", "mm", "b", "B", "é", "e", "ab", "aa", "ä", "vars.x", "vars.y1", "_", "~"]
    body = json.dumps(dict.fromkeys(keys, 1))
    stored = [
        r["k"] for r in await pool.fetch("SELECT jsonb_object_keys($1::text::jsonb) AS k", body)
    ]
    assert stored == jsonb_key_order(keys) and stored != keys
