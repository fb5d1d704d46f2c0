"""Starting a run from the API: `POST /api/workflow-runs` and replay (SPEC §7).

Order of checks: workflow (by id or key) → a version number that can exist → idempotent repeat →
published version → pause → payload schema → priority (an
override more urgent than the definition's needs an admin key) → tenant rate limit → concurrency
limit (under a row lock on the definition, so replicas cannot overshoot) →
run row + log line (one statement) → Temporal start. The row comes first (the platform's
`insert_run`): a crash before the start leaves a `RUNNING` row without `temporal_run_id` that the
sweeper's reconciliation starts; a start that fails marks the run `FAILED` (`stage: "launch"`)
and answers 503 — never an accepted run that nothing executes.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from stepwise_contract.actions import ActionCatalog
from stepwise_contract.enums import LogLevel, LogSource
from stepwise_contract.hashing import sha256_hex
from stepwise_contract.platform.launch import NewRun, insert_run, launch
from stepwise_contract.platform.run_logs import LogLine
from stepwise_contract.platform.start_recorder import StartRecorder
from stepwise_contract.priority import DEFAULT_PRIORITY
from stepwise_contract.run_preload import Preloader
from stepwise_contract.schemas import InvalidSchemaError, validate_instance
from temporalio.client import Client

from stepwise_api import ratelimit
from stepwise_api.db import Tx
from stepwise_api.errors import ApiError

# The workflow by id, or by key (an id wins over an equal key), with its tenant's settings and the
# version to pin; one round trip.
_TARGET = """
SELECT d.workflow_id, d.is_paused, d.concurrency_limit, d.latest_published_version,
       v.version, v.payload_schema_json, v.definition_hash, v.definition_json,
       t.run_rate_limit_per_min,
       t.fairness_weight, t.most_urgent_priority,
       (v.definition_json ->> 'priority')::smallint AS definition_priority
  FROM workflow_definitions d
  JOIN tenants t ON t.tenant = d.tenant
  LEFT JOIN workflow_definition_versions v
         ON v.workflow_id = d.workflow_id AND v.version = COALESCE($3, d.latest_published_version)
 WHERE d.tenant = $1 AND (d.workflow_id = $2 OR d.key = $4)
 ORDER BY d.workflow_id = $2 DESC NULLS LAST
 LIMIT 1
"""

_MAX_VERSION = 2**31


@dataclass(frozen=True)
class LaunchSpec:
    tenant: uuid.UUID
    # the workflow's id; or, with `workflow_key`, the id or key the caller named (None: not an id)
    workflow_id: uuid.UUID | None
    workflow_version: int | None  # None = the latest published version
    payload: dict[str, Any]
    idempotency_key: str | None = None
    trigger_metadata: dict[str, Any] | None = None
    event_type: str | None = None
    # preallocated by callers that must name the new run in their log lines (replay)
    run_id: uuid.UUID | None = None
    # extra log lines written with the run row; `run_id=None` means the new run
    logs: Sequence[LogLine] = field(default_factory=tuple)
    # None = the definition's priority; more urgent than it only when `may_raise_priority`
    priority: int | None = None
    may_raise_priority: bool = False
    workflow_key: str | None = None

    def not_found(self) -> ApiError:
        if self.workflow_key is None:
            return ApiError(404, "WORKFLOW_NOT_FOUND", f"workflow {self.workflow_id} not found")
        looked_for = "id or key" if self.workflow_id is not None else "key"
        return ApiError(
            404,
            "WORKFLOW_NOT_FOUND",
            f"no workflow with {looked_for} {self.workflow_key!r} in this tenant",
        )

    def idempotency_hash(self) -> str:
        return sha256_hex(
            {
                "workflowId": str(self.workflow_id),
                "workflowVersion": self.workflow_version,
                "payload": self.payload,
            }
        )


@dataclass(frozen=True)
class Launched:
    run_id: uuid.UUID
    status: str
    workflow_version: int
    created: bool  # False: an idempotent repeat answered with the existing run

    def body(self) -> dict[str, Any]:
        return {
            "runId": self.run_id,
            "status": self.status,
            "workflowVersion": self.workflow_version,
        }


class Launcher:
    def __init__(
        self,
        pool: asyncpg.Pool,
        client: Client,
        *,
        catalog: ActionCatalog,
        recorder: StartRecorder | None = None,
        crash_after_row: bool = False,
    ):
        self._pool = pool
        self._client = client
        self._recorder = recorder
        self._preloader = Preloader(catalog)
        self._crash_after_row = crash_after_row

    async def _existing(self, spec: LaunchSpec) -> Launched | None:
        if spec.idempotency_key is None:
            return None
        record = await self._pool.fetchrow(
            "SELECT run_id, status, workflow_version, idempotency_hash FROM workflow_runs"
            " WHERE tenant = $1 AND idempotency_key = $2",
            spec.tenant,
            spec.idempotency_key,
        )
        if record is None:
            return None
        if record["idempotency_hash"] != spec.idempotency_hash():
            raise ApiError(
                409,
                "IDEMPOTENCY_KEY_REUSED",
                "this Idempotency-Key was used with a different request body",
                runId=str(record["run_id"]),
            )
        return Launched(
            run_id=record["run_id"],
            status=record["status"],
            workflow_version=record["workflow_version"],
            created=False,
        )

    async def launch(self, spec: LaunchSpec) -> Launched:
        asked = spec.workflow_version
        # a version no row can have still answers "workflow not found" first when that is so
        in_range = asked is None or 1 <= asked < _MAX_VERSION
        target = await self._pool.fetchrow(
            _TARGET, spec.tenant, spec.workflow_id, asked if in_range else None, spec.workflow_key
        )
        if target is None:
            raise spec.not_found()
        if not in_range:
            raise ApiError(404, "VERSION_NOT_FOUND", f"version {asked} not found")
        workflow_id: uuid.UUID = target["workflow_id"]
        # named by id from here on: the idempotency hash covers the id
        spec = dataclasses.replace(spec, workflow_id=workflow_id, workflow_key=None)
        existing = await self._existing(spec)
        if existing is not None:
            return existing
        if target["version"] is None:
            if asked is not None:
                raise ApiError(
                    404,
                    "VERSION_NOT_FOUND",
                    f"version {asked} of {workflow_id} is not published",
                )
            raise ApiError(409, "NO_PUBLISHED_VERSION", "the workflow has no published version")
        if target["is_paused"]:
            raise ApiError(409, "WORKFLOW_PAUSED", "the workflow is paused")
        _check_payload(target["payload_schema_json"], spec.payload)
        priority = max(
            run_priority_for(spec, target["definition_priority"]), target["most_urgent_priority"]
        )
        await self._take_rate(spec.tenant, target["run_rate_limit_per_min"])
        run_id = spec.run_id or uuid.uuid4()
        version = int(target["version"])
        started = LogLine(
            level=LogLevel.INFO,
            message="Run started",
            context={"workflowVersion": version, "source": "api", "priority": priority},
        )
        run = NewRun(
            run_id=run_id,
            tenant=spec.tenant,
            workflow_id=workflow_id,
            workflow_version=version,
            input_json=spec.payload,
            definition_hash=target["definition_hash"],
            trigger_metadata=spec.trigger_metadata,
            event_type=spec.event_type,
            idempotency_key=spec.idempotency_key,
            idempotency_hash=spec.idempotency_hash() if spec.idempotency_key else None,
            priority=priority,
        )
        logs = [started, *spec.logs]
        try:
            if target["concurrency_limit"] is None:
                await insert_run(self._pool, run, logs=logs, source=LogSource.API)
            else:
                async with self._pool.acquire() as conn, conn.transaction():
                    await _check_concurrency(conn, spec.tenant, workflow_id)
                    await insert_run(conn, run, logs=logs, source=LogSource.API)
        except asyncpg.UniqueViolationError:
            # A concurrent request with the same Idempotency-Key won the insert.
            repeat = await self._existing(spec)
            if repeat is None:
                raise
            return repeat
        if self._crash_after_row:
            # TEST-ONLY fault hook (STEPWISE_FAULT_CRASH_AFTER_RUN_ROW): die between the row and
            # the Temporal start, as a crashed replica would.
            os._exit(137)
        fairness = run.temporal_priority(target["fairness_weight"])
        preloaded = self._preloader.preload(
            definition=target["definition_json"],
            definition_hash=target["definition_hash"],
            payload=spec.payload,
        )
        temporal_run_id = await launch(
            self._pool, self._client, run.run_input(preloaded), fairness, recorder=self._recorder
        )
        if temporal_run_id is None:
            raise ApiError(
                503,
                "WORKFLOW_LAUNCH_FAILED",
                "the run was recorded but Temporal could not start it; it is FAILED (stage launch)",
                runId=str(run_id),
            )
        return Launched(run_id=run_id, status="RUNNING", workflow_version=version, created=True)

    async def _take_rate(self, tenant: uuid.UUID, limit: int | None) -> None:
        decision = await ratelimit.take_launch(self._pool, tenant, limit)
        if not decision.allowed:
            raise ApiError(
                429,
                "RATE_LIMITED",
                f"the tenant's launch rate limit of {limit}/min is reached",
                headers={"Retry-After": str(decision.retry_after_s)},
                limit=limit,
            )


def run_priority_for(spec: LaunchSpec, definition_priority: int | None) -> int:
    """The launch's priority: the definition's, or the caller's within what its role allows.
    (The tenant's `most_urgent_priority` cap applies on top.)"""
    declared = DEFAULT_PRIORITY if definition_priority is None else int(definition_priority)
    if spec.priority is None:
        return declared
    if spec.priority < declared and not spec.may_raise_priority:
        raise ApiError(
            403,
            "PRIORITY_NOT_ALLOWED",
            f"only an admin key may launch more urgently than the definition's priority"
            f" {declared} (1 = most urgent)",
            definitionPriority=declared,
        )
    return spec.priority


def _check_payload(schema: Any, payload: dict[str, Any]) -> None:
    if schema is None:
        return
    try:
        issues = validate_instance(schema, payload)
    except InvalidSchemaError as exc:
        raise ApiError(
            409, "INVALID_PAYLOAD_SCHEMA", f"the version's payload schema is invalid: {exc}"
        ) from None
    if issues:
        raise ApiError(
            400,
            "PAYLOAD_INVALID",
            "the payload does not match the workflow's payload schema",
            errors=[{"path": i.path, "message": i.message} for i in issues],
        )


async def _check_concurrency(conn: Tx, tenant: uuid.UUID, workflow_id: uuid.UUID) -> None:
    # The row lock serialises launches of this workflow across replicas while we count.
    limit = await conn.fetchval(
        "SELECT concurrency_limit FROM workflow_definitions"
        " WHERE tenant = $1 AND workflow_id = $2 FOR UPDATE",
        tenant,
        workflow_id,
    )
    if limit is None:
        return
    active = await conn.fetchval(
        "SELECT count(*) FROM workflow_runs WHERE tenant = $1 AND workflow_id = $2"
        " AND status IN ('RUNNING', 'WAITING')",
        tenant,
        workflow_id,
    )
    if active >= limit:
        raise ApiError(
            429,
            "CONCURRENCY_LIMIT",
            f"the workflow already has {active} active runs (limit {limit})",
            limit=limit,
            active=active,
        )
