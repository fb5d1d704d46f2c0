"""A database of the reference runtime, for adoption tests: its final schema and realistic rows.

`build_reference_database(url)` creates the schema (`reference_schema.sql`: every reference table,
column, default, index, unique key and foreign key, plus the host application's `tenants`,
`api_keys` and `workflow_tasks` tables)
and fills it as a reference deployment leaves it after the temporal-only cutover: published
definitions with versions, runs of every status on engines `'temporal'`, `'db'` and NULL (some still
in flight: the stranded ones), steps (one of the legacy `RETRY_SCHEDULED` status), waits,
pre-cutover snapshots, invocations, logs, events, data-store rows and a step usage period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import asyncpg
from stepwise_contract.platform.db import init_connection

SUM_DEFINITION_STEPS: list[dict[str, Any]] = [
    {
        "id": "sum",
        "type": "transform.assign",
        "config": {"assign": {"vars.total": {"$expr": "payload.a + payload.b"}}},
    },
    {
        "id": "big",
        "type": "control.if",
        "condition": {"$expr": "vars.total > 10"},
        "then": [{"id": "mark-big", "type": "state.set", "config": {"state": "big"}}],
        "else": [{"id": "mark-small", "type": "state.set", "config": {"state": "small"}}],
    },
]
WAIT_EVENT = "REF_ORDER_PAID"
WAIT_DEFINITION_STEPS: list[dict[str, Any]] = [
    {
        "id": "paid",
        "type": "event.wait",
        "config": {
            "eventName": WAIT_EVENT,
            "correlationKey": {"$expr": "payload.orderId"},
            "timeoutMs": 600_000,
        },
    },
    {
        "id": "amount",
        "type": "transform.assign",
        "config": {"assign": {"vars.amount": {"$expr": "vars.event.amount"}}},
    },
]

TRIGGER_EVENT = "REF_TICKET_CREATED"
TRIGGER = {
    "type": "event",
    "eventName": TRIGGER_EVENT,
    "payloadMapping": {"ticketId": {"$expr": "event.payload.ticket.id"}},
}
TRIGGER_DEFINITION_STEPS: list[dict[str, Any]] = [
    {
        "id": "ticket",
        "type": "transform.assign",
        "config": {"assign": {"vars.ticket": {"$expr": "payload.ticketId"}}},
    },
]


@dataclass(frozen=True, slots=True)
class ReferenceRows:
    """Ids of the rows the fixture wrote, by role."""

    tenant: uuid.UUID  # in the host's tenants table, with rows of every kind
    host_only_tenant: uuid.UUID  # in the host's tenants table, no workflow rows
    orphan_tenant: uuid.UUID  # known only from its workflow rows
    sum_workflow: uuid.UUID  # published versions 1 and 2
    wait_workflow: uuid.UUID  # published version 1, waits for WAIT_EVENT
    trigger_workflow: uuid.UUID  # published version 1, started by TRIGGER_EVENT
    draft_workflow: uuid.UUID  # never published
    orphan_workflow: uuid.UUID
    runs: dict[str, uuid.UUID] = field(default_factory=dict)
    events: dict[str, uuid.UUID] = field(default_factory=dict)

    @property
    def stranded(self) -> list[str]:
        return [name for name in self.runs if name.startswith("stranded")]


def _definition(
    workflow_id: uuid.UUID, version: int, name: str, steps: Any, trigger: Any = None
) -> dict[str, Any]:
    body = {
        "id": str(workflow_id),
        "version": version,
        "name": name,
        "payloadSchemaRef": "payload.Empty.v1",
        "steps": steps,
    }
    return body if trigger is None else {**body, "trigger": trigger}


async def _definitions(conn: asyncpg.Connection, rows: ReferenceRows, ago: datetime) -> None:
    sum_steps, wait_steps = SUM_DEFINITION_STEPS, WAIT_DEFINITION_STEPS
    published = [
        (rows.sum_workflow, rows.tenant, "ref-sum", "Reference sum", sum_steps, None, 2),
        (rows.wait_workflow, rows.tenant, "ref-wait", "Reference wait", wait_steps, None, 1),
        (
            rows.trigger_workflow, rows.tenant, "ref-trigger", "Reference trigger",
            TRIGGER_DEFINITION_STEPS, TRIGGER, 1,
        ),
        (rows.orphan_workflow, rows.orphan_tenant, "ref-sum", "Orphan", sum_steps, None, 1),
    ]  # fmt: skip
    for workflow_id, tenant, key, name, steps, trigger, versions in published:
        draft = _definition(workflow_id, versions, name, steps, trigger)
        await conn.execute(
            "INSERT INTO workflow_definitions (workflow_id, tenant, key, name, payload_schema_ref,"
            " trigger, draft_definition, draft_version, status, validation_status,"
            " validation_errors, validation_warnings, validated_at, created_at, updated_at)"
            " VALUES ($1, $2, $3, $4, 'payload.Empty.v1', $5, $6, $7, 'published', 'valid', '[]',"
            " '[]', $8, $8, $8)",
            workflow_id, tenant, key, name, trigger, draft, versions, ago,
        )  # fmt: skip
        for version in range(1, versions + 1):
            await conn.execute(
                "INSERT INTO workflow_definition_versions (workflow_id, tenant, version,"
                " definition_json, payload_schema_json, published_at, created_at)"
                " VALUES ($1, $2, $3, $4, '{\"type\": \"object\"}', $5, $5)",
                workflow_id, tenant, version,
                _definition(workflow_id, version, name, steps, trigger),
                ago + timedelta(minutes=version),
            )  # fmt: skip
    # a draft never validated: the reference left its validation columns NULL
    await conn.execute(
        "INSERT INTO workflow_definitions (workflow_id, tenant, name, payload_schema_ref,"
        " draft_definition) VALUES ($1, $2, 'Reference draft', 'payload.Empty.v1', $3)",
        rows.draft_workflow, rows.tenant,
        _definition(rows.draft_workflow, 1, "Reference draft", SUM_DEFINITION_STEPS),
    )  # fmt: skip


# name: (engine, status); all of the main tenant
_RUNS: dict[str, tuple[str | None, str]] = {
    "temporal_succeeded": ("temporal", "SUCCEEDED"),
    "temporal_failed": ("temporal", "FAILED"),
    "temporal_running": ("temporal", "RUNNING"),
    "db_succeeded": ("db", "SUCCEEDED"),
    "db_failed": ("db", "FAILED"),
    "null_canceled": (None, "CANCELED"),
    "stranded_db_running": ("db", "RUNNING"),
    "stranded_db_waiting": ("db", "WAITING"),
    "stranded_null_running": (None, "RUNNING"),
}


async def _runs(conn: asyncpg.Connection, rows: ReferenceRows, ago: datetime) -> None:
    for i, (name, (engine, status)) in enumerate(_RUNS.items()):
        run_id = rows.runs[name]
        terminal = status in ("SUCCEEDED", "FAILED", "CANCELED")
        started = ago + timedelta(minutes=10 + i)
        await conn.execute(
            "INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, tenant, status,"
            " node_path, input_json, error_json, started_at, completed_at, updated_at, engine,"
            " temporal_workflow_id, temporal_run_id, definition_hash, runtime_semantics_version,"
            " root_run_id) VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9,"
            " coalesce($9::timestamptz, $8), $10, $11, $12, 'abc', $13, $1)",
            run_id, rows.sum_workflow, rows.tenant, status,
            None if terminal else "root.steps[1]",
            {"a": 3, "b": 4, "customer": {"email": "ann@example.com"}},
            {"message": "boom", "category": "ActionError"} if status == "FAILED" else None,
            started, started + timedelta(seconds=5) if terminal else None, engine,
            f"workflow-runtime-v2:run:{run_id}" if engine == "temporal" else None,
            str(uuid.uuid4()) if engine == "temporal" else None,
            "2026-04-08.temporal-native.v1" if engine == "temporal" else None,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO workflow_run_steps (run_id, tenant, step_path, definition_step_id,"
            " status, attempt, duration_ms, error_json, started_at, completed_at)"
            " VALUES ($1, $2, 'root.steps[0]', 'sum', $3, 1, 12, $4, $5, $6)",
            run_id, rows.tenant, "FAILED" if status == "FAILED" else "SUCCEEDED",
            {"message": "boom"} if status == "FAILED" else None, started,
            started + timedelta(milliseconds=12),
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO workflow_run_logs (run_id, tenant, level, message, context_json, source,"
            " created_at) VALUES ($1, $2, 'INFO', 'Run started', $3, 'runtime', $4),"
            " ($1, $2, 'WARN', 'Viewed in Run Studio', NULL, $5, $4)",
            run_id, rows.tenant, {"payloadKeys": ["a", "b"]}, started,
            "ui" if i % 2 else None,
        )  # fmt: skip
        if engine == "db":
            await conn.execute(
                "INSERT INTO workflow_run_snapshots (run_id, tenant, step_path, envelope_json,"
                " size_bytes, created_at) VALUES ($1, $2, 'root.steps[0]', $3, 64, $4)",
                run_id, rows.tenant, {"vars": {"total": 7}, "meta": {"state": None}}, started,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO workflow_run_steps (run_id, tenant, step_path, definition_step_id,"
                " status, attempt, started_at) VALUES ($1, $2, 'root.steps[1]', 'big',"
                " 'RETRY_SCHEDULED', 1, $3)",
                run_id, rows.tenant, started + timedelta(seconds=1),
            )  # fmt: skip
        if not terminal:
            await conn.execute(
                "INSERT INTO workflow_run_waits (run_id, tenant, step_path, wait_type, key,"
                " event_name, timeout_at, status, payload, created_at)"
                " VALUES ($1, $2, 'root.steps[1]', $3, 'order-1', $4, $5, 'WAITING', $6, $7)",
                run_id, rows.tenant, "retry" if status == "WAITING" else "event",
                None if status == "WAITING" else WAIT_EVENT, started + timedelta(days=1),
                {"eventName": WAIT_EVENT}, started,
            )  # fmt: skip
    ok = rows.runs["temporal_succeeded"]
    await conn.execute(
        "INSERT INTO workflow_run_waits (run_id, tenant, step_path, wait_type, key, event_name,"
        " status, payload, created_at, resolved_at) VALUES ($1, $2, 'root.steps[0]', 'event',"
        " 'order-0', $3, 'RESOLVED', $4, $5, $5)",
        ok, rows.tenant, WAIT_EVENT, {"matchedEventId": str(rows.events["matched"])}, ago,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO workflow_action_invocations (run_id, tenant, step_path, action_id,"
        " action_version, idempotency_key, status, attempt, input_json, output_json, created_at,"
        " started_at, completed_at) VALUES ($1, $2, 'root.steps[0]', 'core.echo', 1, $3,"
        " 'SUCCEEDED', 1, $4, $5, $6, $6, $6)",
        ok, rows.tenant, f"{ok}:root.steps[0]", {"value": 7}, {"value": 7}, ago,
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, tenant, status,"
        " input_json, started_at, completed_at, engine) VALUES ($1, $2, 1, $3, 'SUCCEEDED',"
        " '{}', $4, $4, 'temporal')",
        rows.runs["orphan_succeeded"], rows.orphan_workflow, rows.orphan_tenant, ago,
    )  # fmt: skip
    # a legacy run whose tenant_id never matched a uuid: its tenant stayed NULL
    await conn.execute(
        "INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, tenant, status,"
        " started_at, engine) VALUES ($1, $2, 1, NULL, 'RUNNING', $3, 'db')",
        rows.runs["stranded_no_tenant"], rows.sum_workflow, ago,
    )  # fmt: skip


async def _events_and_store(conn: asyncpg.Connection, rows: ReferenceRows, ago: datetime) -> None:
    events = [
        ("matched", rows.runs["temporal_succeeded"], None),
        ("unmatched", None, None),
        ("error", None, "payload failed validation"),
    ]
    for name, matched, error in events:
        await conn.execute(
            "INSERT INTO workflow_runtime_events (event_id, tenant, event_name, correlation_key,"
            " payload, created_at, processed_at, matched_run_id, error_message)"
            " VALUES ($1, $2, $3, 'order-0', $4, $5, $5, $6, $7)",
            rows.events[name], rows.tenant, WAIT_EVENT, {"amount": 5}, ago, matched, error,
        )  # fmt: skip
    await conn.execute(
        "INSERT INTO workflow_data_store (tenant, namespace, key, value, value_type, revision,"
        " created_by_run_id) VALUES ($1, 'orders', 'last', $2, 'json', 3, $3)",
        rows.tenant, {"id": 7}, rows.runs["temporal_succeeded"],
    )  # fmt: skip
    await conn.execute(
        "INSERT INTO workflow_entity_links (tenant, namespace, left_type, left_id, right_type,"
        " right_id) VALUES ($1, 'crm', 'ticket', 'T-1', 'client', 'C-9')",
        rows.tenant,
    )  # fmt: skip
    month = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    after = (month + timedelta(days=32)).replace(day=1)
    await conn.execute(
        "INSERT INTO workflow_step_usage_periods (tenant, period_start, period_end, period_source,"
        " effective_limit, used_count, limit_source, tier) VALUES ($1, $2, $3,"
        " 'stripe_subscription', 1000, 12, 'stripe_price_metadata', 'pro')",
        rows.tenant, month, after,
    )  # fmt: skip


async def build_reference_database(url: str) -> ReferenceRows:
    """Create the reference schema in the (empty) database at `url` and fill it."""
    rows = ReferenceRows(
        tenant=uuid.uuid4(),
        host_only_tenant=uuid.uuid4(),
        orphan_tenant=uuid.uuid4(),
        sum_workflow=uuid.uuid4(),
        wait_workflow=uuid.uuid4(),
        trigger_workflow=uuid.uuid4(),
        draft_workflow=uuid.uuid4(),
        orphan_workflow=uuid.uuid4(),
        runs={name: uuid.uuid4() for name in (*_RUNS, "orphan_succeeded", "stranded_no_tenant")},
        events={name: uuid.uuid4() for name in ("matched", "unmatched", "error")},
    )
    ago = datetime.now(UTC) - timedelta(days=3)
    conn = await asyncpg.connect(url)
    try:
        await init_connection(conn)
        async with conn.transaction():
            await conn.execute(
                (resources.files("stepwise_devkit") / "reference_schema.sql").read_text("utf-8")
            )
            await conn.execute(
                "INSERT INTO tenants (tenant, company_name, email) VALUES"
                " ($1, 'Acme Field Services', 'ops@acme.example'),"
                " ($2, 'Globex', 'it@globex.example')",
                rows.tenant, rows.host_only_tenant,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO api_keys (api_key, tenant, description) VALUES ('alga_k1', $1, 'crm')",
                rows.tenant,
            )
            await conn.execute(
                "INSERT INTO workflow_tasks (tenant, title, assigned_roles)"
                " VALUES ($1, 'Approve invoice', '{finance}')",
                rows.tenant,
            )
            await _definitions(conn, rows, ago)
            await _runs(conn, rows, ago)
            await _events_and_store(conn, rows, ago)
    finally:
        await conn.close()
    return rows
