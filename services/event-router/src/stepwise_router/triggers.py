"""Starting the runs an event triggers (SPEC §8 step 7).

Every published, unpaused workflow of the tenant whose trigger names this event starts a run of its
latest published version. The run's payload is the trigger's `payloadMapping` resolved over
`{event: {name, correlationKey, payload}}` (dotted keys expand into nested objects, as in the
reference system), or the event payload when there is no mapping; it is validated against the
version's payload schema.

Idempotency: the run row carries the fire key `event:<event_id>:<workflow_id>` (unique per tenant).
A redelivered event finds the row and reuses the run; if that run never got its Temporal start
(the router died in between), it is started now — the start is idempotent by workflow id. A
mapping or validation failure becomes a `FAILED` run (`stage: "launch"`, category
`ValidationError`, `errors`), written in the same transaction as its row so a redelivery never
mistakes it for a run to start; it is reported, and the other workflows still start.

The row and the start go through the platform's `insert_run` and `start_recorded`, as the API's
launches do. Unlike an API launch (whose caller is waiting and gets the error), a Temporal start
that fails here raises: the message is redelivered with backoff and the run row stays `RUNNING`
with no Temporal run id, which the next delivery — or, past the last one, the sweeper's launch
reconciliation — starts. Nothing is stranded and a Temporal blip does not fail runs.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec
from stepwise_contract import names
from stepwise_contract.actions import ActionCatalog, full_catalog
from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.envelope import EventEnvelope
from stepwise_contract.expressions import (
    UNDEFINED,
    ExpressionError,
    expression_context,
    resolve_value,
)
from stepwise_contract.platform.launch import (
    NewRun,
    insert_run,
    mark_launch_failed,
    priority_of,
    run_input_for,
    start_recorded,
)
from stepwise_contract.platform.run_logs import LogLine
from stepwise_contract.run_preload import Preloader
from stepwise_contract.schemas import InvalidSchemaError, validate_instance
from temporalio.client import Client

from stepwise_router.group_commit import Batching, fetch_grouped

# Every event of a batch (group commit, `group_commit.py`): `ord` is its index in the batch.
TRIGGERED = """
SELECT i.ord, d.workflow_id, v.version, v.definition_json -> 'trigger' AS trigger,
       v.definition_json, v.payload_schema_json, v.definition_hash,
       GREATEST(COALESCE((v.definition_json ->> 'priority')::smallint, 3),
                COALESCE(t.most_urgent_priority, 1)) AS priority,
       COALESCE(t.fairness_weight, 1.0) AS fairness_weight
FROM jsonb_to_recordset($1::jsonb) AS i(ord int, tenant uuid, event_name text)
JOIN workflow_definitions d
  ON d.tenant = i.tenant AND d.trigger_event_name = i.event_name AND d.status = 'published'
     AND NOT d.is_paused
LEFT JOIN tenants t ON t.tenant = d.tenant
JOIN LATERAL (
    SELECT version, definition_json, payload_schema_json, definition_hash
    FROM workflow_definition_versions
    WHERE tenant = d.tenant AND workflow_id = d.workflow_id
    ORDER BY version DESC LIMIT 1
) v ON true
ORDER BY i.ord, d.created_at, d.workflow_id
"""

RUN_BY_FIRE_KEY = """
SELECT r.run_id, r.tenant, r.workflow_id, r.workflow_version, r.status, r.temporal_run_id,
       r.error_json, r.trigger_type, r.trigger_fire_key, r.idempotency_key, r.parent_run_id,
       r.root_run_id, r.priority, COALESCE(t.fairness_weight, 1.0) AS fairness_weight
FROM workflow_runs r LEFT JOIN tenants t ON t.tenant = r.tenant
WHERE r.tenant = $1 AND r.trigger_fire_key = $2
"""


class Triggered(msgspec.Struct, frozen=True, kw_only=True):
    started_run_ids: list[uuid.UUID]
    errors: list[str]  # one line per workflow whose run failed at launch


class _Workflow(msgspec.Struct, frozen=True, kw_only=True):
    workflow_id: uuid.UUID
    version: int
    trigger: dict[str, Any]
    definition: Any  # the version's whole definition, sent with the start (`Preloader`)
    payload_schema: Any
    definition_hash: str
    priority: int
    fairness_weight: float


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _set_dotted(target: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = target[part] = {}
        target = child
    target[leaf] = value


def build_payload(
    env: EventEnvelope, primary_key: str | None, trigger: dict[str, Any], schema: Any
) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """The run payload for a trigger and the issues that forbid starting it (empty: valid)."""
    event_payload = env.payload or {}
    mapping = trigger.get("payloadMapping")
    errors: list[dict[str, str]] = []
    if not mapping:
        payload = dict(event_payload)
    elif not isinstance(mapping, dict):
        return {}, [{"path": "/trigger/payloadMapping", "message": "must be an object"}]
    else:
        context = expression_context(
            {"event": {"name": env.name, "correlationKey": primary_key, "payload": event_payload}}
        )
        payload = {}
        for key, value in mapping.items():
            try:
                resolved = resolve_value(value, context, now_iso=_now_iso)
            except ExpressionError as exc:
                errors.append({"path": f"/trigger/payloadMapping/{key}", "message": str(exc)})
                continue
            if resolved is not UNDEFINED:
                _set_dotted(payload, key, resolved)
    if errors or schema is None:
        return payload, errors
    try:
        issues = validate_instance(schema, payload)
    except InvalidSchemaError as exc:
        return payload, [
            {"path": "/", "message": f"the version's payload schema is invalid: {exc}"}
        ]
    return payload, [{"path": i.path, "message": i.message} for i in issues]


_Lookup = tuple[uuid.UUID, str]


class TriggerLauncher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Client,
        batching: Batching | None = None,
        *,
        catalog: ActionCatalog | None = None,
    ):
        self._pool = pool
        self._client = client
        # the run travels with its start (one local activity less per triggered run)
        self._preloader = Preloader(full_catalog() if catalog is None else catalog)
        batching = batching or Batching()  # concurrent lookups share a statement
        self._lookup = batching.commit("triggers", self._lookup_many, self._lookup_one)

    async def _lookup_one(self, item: _Lookup) -> Sequence[asyncpg.Record]:
        return (await self._lookup_many([item]))[0]

    async def _lookup_many(self, items: Sequence[_Lookup]) -> list[list[asyncpg.Record]]:
        return await fetch_grouped(
            self._pool,
            TRIGGERED,
            [{"tenant": tenant, "event_name": name} for tenant, name in items],
        )

    async def _workflows(self, tenant: uuid.UUID, event_name: str) -> list[_Workflow]:
        rows = await self._lookup((tenant, event_name))
        found = []
        for row in rows:
            trigger = row["trigger"]
            # The lookup column could lag the pinned version; the version's own trigger decides.
            if not isinstance(trigger, dict) or trigger.get("eventName") != event_name:
                continue
            found.append(
                _Workflow(
                    workflow_id=row["workflow_id"],
                    version=row["version"],
                    trigger=trigger,
                    definition=row["definition_json"],
                    payload_schema=row["payload_schema_json"],
                    definition_hash=row["definition_hash"],
                    priority=row["priority"],
                    fairness_weight=row["fairness_weight"],
                )
            )
        return found

    async def start_all(self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str]) -> Triggered:
        started: list[uuid.UUID] = []
        errors: list[str] = []
        for wf in await self._workflows(tenant, env.name):
            run_id, error = await self._start_one(tenant, env, keys, wf)
            if error is not None:
                errors.append(f"workflow {wf.workflow_id}: {error}")
            else:
                started.append(run_id)
        return Triggered(started_run_ids=started, errors=errors)

    async def _start_one(
        self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str], wf: _Workflow
    ) -> tuple[uuid.UUID, str | None]:
        """(run id, None) once the run is started; (run id, message) when it failed at launch."""
        fire_key = names.trigger_fire_key(env.event_id, str(wf.workflow_id))
        primary = keys[0] if keys else None
        if wf.trigger.get("payloadMapping"):
            # Tenant expressions are bounded (a counted budget) but can still take a few hundred
            # ms: evaluated off the event loop, so other tenants' events keep flowing meanwhile.
            payload, issues = await asyncio.to_thread(
                build_payload, env, primary, wf.trigger, wf.payload_schema
            )
        else:
            payload, issues = build_payload(env, primary, wf.trigger, wf.payload_schema)
        run_id = uuid.uuid4()
        message = (
            "trigger payload failed validation: "
            + "; ".join(f"{i['path']}: {i['message']}" for i in issues)
            if issues
            else None
        )
        run = NewRun(
            run_id=run_id,
            tenant=tenant,
            workflow_id=wf.workflow_id,
            workflow_version=wf.version,
            input_json=payload,
            definition_hash=wf.definition_hash,
            trigger_type="event",
            trigger_metadata={
                "eventId": env.event_id,
                "eventName": env.name,
                "eventType": env.event_type,
                "correlationKey": primary,
            },
            trigger_fire_key=fire_key,
            event_type=env.event_type,
            priority=wf.priority,
        )
        started = LogLine(
            level=LogLevel.INFO,
            message="Run started",
            context={
                "workflowVersion": wf.version,
                "source": "event",
                "eventId": env.event_id,
                "priority": wf.priority,
            },
        )
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await insert_run(conn, run, logs=[started], source=LogSource.ROUTER)
                if message is not None:
                    await mark_launch_failed(
                        conn, run_id, message, category="ValidationError", extra={"errors": issues}
                    )
        except asyncpg.UniqueViolationError:
            return await self._resume_existing(tenant, fire_key)
        if message is not None:
            return run_id, message
        preloaded = self._preloader.preload(
            definition=wf.definition, definition_hash=wf.definition_hash, payload=payload
        )
        await start_recorded(
            self._pool,
            self._client,
            run.run_input(preloaded),
            run.temporal_priority(wf.fairness_weight),
        )
        return run_id, None

    async def _resume_existing(
        self, tenant: uuid.UUID, fire_key: str
    ) -> tuple[uuid.UUID, str | None]:
        """A previous delivery created the run: report it, starting it if it never was."""
        row = await self._pool.fetchrow(RUN_BY_FIRE_KEY, tenant, fire_key)
        assert row is not None  # the unique violation proves it exists
        error = row["error_json"] if isinstance(row["error_json"], dict) else {}
        if row["status"] == "FAILED" and error.get("stage") == "launch":
            return row["run_id"], str(error.get("message") or "failed at launch")
        if row["temporal_run_id"] is None and row["status"] in ("RUNNING", "WAITING"):
            await start_recorded(self._pool, self._client, run_input_for(row), priority_of(row))
        return row["run_id"], None
