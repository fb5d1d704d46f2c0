"""Reads of runs and their projections (steps, invocations, waits, snapshots, logs), redacted.

Every JSON document leaves through `Principal.redactor.document` — the reads, the JSON export and
the logs share this module, so they redact identically.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stepwise_contract.enums import RunStatus
from stepwise_contract.task_failures import WARNING_CODE, decode_failure

from stepwise_api.db import Conn
from stepwise_api.errors import ApiError
from stepwise_api.redaction import Redactor

SUMMARY_COLUMNS = """r.run_id, r.tenant, r.workflow_id, d.name AS workflow_name, r.workflow_version,
    r.status, r.node_path, r.engine, r.trigger_type, r.trigger_metadata_json, r.event_type,
    r.parent_run_id, r.root_run_id, r.error_json, r.started_at, r.completed_at, r.updated_at,
    r.workflow_task_failure_json,
    r.priority"""
# The open wait of an open run (the newest, should a parallel branch hold several) with its human
# task's title: what the run is waiting on.
WAITING_ON_JOIN = """LEFT JOIN LATERAL (
    SELECT w.wait_type AS waiting_type, w.event_name AS waiting_event_name, w.key AS waiting_key,
           w.timeout_at AS waiting_until, t.title AS waiting_task_title
      FROM workflow_run_waits w
      LEFT JOIN workflow_tasks t
             ON w.wait_type = 'human' AND t.tenant = w.tenant AND t.task_id::text = w.key
     WHERE w.tenant = r.tenant AND w.run_id = r.run_id AND w.status = 'WAITING'
       AND r.status IN ('RUNNING', 'WAITING')
     ORDER BY w.created_at DESC, w.wait_id DESC
     LIMIT 1) wo ON true"""
WAITING_ON_COLUMNS = (
    "wo.waiting_type, wo.waiting_event_name, wo.waiting_key, wo.waiting_until,"
    " wo.waiting_task_title"
)
WAIT_TYPES = ("event", "time", "human", "quota")
MAX_FILTER_CHARS = 200
RUN_JSON_FIELDS = ("input_json", "result_json", "error_json", "trigger_metadata_json")
SORTS = {
    "started_at:desc": ("started_at", "DESC"),
    "started_at:asc": ("started_at", "ASC"),
    "updated_at:desc": ("updated_at", "DESC"),
    "updated_at:asc": ("updated_at", "ASC"),
}


@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[str, ...] = ()
    workflow_id: uuid.UUID | None = None
    version: int | None = None
    search: str | None = None
    started_from: datetime | None = None
    started_to: datetime | None = None
    sort: str = "started_at:desc"
    waiting_on: tuple[str, ...] = ()
    # a workflow named by its id, its key or its exact name
    workflow: str | None = None

    def __post_init__(self) -> None:
        for status in self.statuses:
            if status not in RunStatus.__members__:
                raise ApiError(400, "INVALID_PARAMETER", f"unknown run status {status!r}")
        for name, text in (("workflow", self.workflow), ("search", self.search)):
            if text is not None and len(text) > MAX_FILTER_CHARS:
                raise ApiError(
                    400, "INVALID_PARAMETER", f"{name} is at most {MAX_FILTER_CHARS} characters"
                )
        for kind in self.waiting_on:
            if kind not in WAIT_TYPES:
                raise ApiError(
                    400, "INVALID_PARAMETER", f"waitingOn must be one of {list(WAIT_TYPES)}"
                )
        if self.sort not in SORTS:
            raise ApiError(400, "INVALID_PARAMETER", f"sort must be one of {sorted(SORTS)}")


def redact_fields(record: dict[str, Any], fields: tuple[str, ...], redactor: Redactor) -> None:
    for name in fields:
        if name in record and record[name] is not None:
            record[name] = redactor.document(record[name])


async def list_runs(
    conn: Conn,
    tenant: uuid.UUID,
    flt: RunFilter,
    after: tuple[datetime, str] | None,
    limit: int,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    column, direction = SORTS[flt.sort]
    compare = "<" if direction == "DESC" else ">"
    args: list[Any] = [tenant]
    where = ["r.tenant = $1"]

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if flt.statuses:
        where.append(f"r.status = ANY({arg(list(flt.statuses))}::text[])")
    if flt.workflow_id is not None:
        where.append(f"r.workflow_id = {arg(flt.workflow_id)}")
    if flt.workflow:
        ref = arg(flt.workflow)
        where.append(f"(r.workflow_id::text = lower({ref}) OR d.key = {ref} OR d.name = {ref})")
    if flt.waiting_on:
        where.append(
            "r.status IN ('RUNNING', 'WAITING') AND EXISTS (SELECT 1 FROM workflow_run_waits w"
            " WHERE w.tenant = r.tenant AND w.run_id = r.run_id AND w.status = 'WAITING'"
            f" AND w.wait_type = ANY({arg(list(flt.waiting_on))}::text[]))"
        )
    if flt.version is not None:
        where.append(f"r.workflow_version = {arg(flt.version)}")
    if flt.search:
        pattern = arg("%" + flt.search.replace("\\", "\\\\").replace("%", r"\%") + "%")
        where.append(
            f"(r.run_id::text ILIKE {pattern} OR d.name ILIKE {pattern} OR EXISTS ("
            f"SELECT 1 FROM workflow_run_waits w WHERE w.tenant = r.tenant"
            f" AND w.run_id = r.run_id AND w.key ILIKE {pattern}))"
        )
    if flt.started_from is not None:
        where.append(f"r.started_at >= {arg(flt.started_from)}")
    if flt.started_to is not None:
        where.append(f"r.started_at < {arg(flt.started_to)}")
    if after is not None:
        where.append(
            f"(r.{column}, r.run_id) {compare} ({arg(after[0])}::timestamptz,"
            f" {arg(uuid.UUID(after[1]))}::uuid)"
        )
    sql = (
        f"SELECT {SUMMARY_COLUMNS}, {WAITING_ON_COLUMNS} FROM workflow_runs r"
        " LEFT JOIN workflow_definitions d ON d.workflow_id = r.workflow_id AND d.tenant = r.tenant"
        f" {WAITING_ON_JOIN}"
        f" WHERE {' AND '.join(where)}"
        f" ORDER BY r.{column} {direction}, r.run_id {direction} LIMIT {arg(limit)}"
    )
    out = [dict(r) for r in await conn.fetch(sql, *args)]
    for item in out:
        redact_fields(item, RUN_JSON_FIELDS, redactor)
        item["warnings"] = recorded_warnings(item)
        item["waiting_on"] = waiting_on(item)
    return out


def waiting_on(run: dict[str, Any]) -> dict[str, Any] | None:
    """`{type, event_name?, key?, until?, task_title?}` of the run's open wait, taken out of the
    `waiting_*` columns of `WAITING_ON_JOIN`; None when the run waits on nothing."""
    columns = {
        "type": run.pop("waiting_type", None),
        "event_name": run.pop("waiting_event_name", None),
        "key": run.pop("waiting_key", None),
        "until": run.pop("waiting_until", None),
        "task_title": run.pop("waiting_task_title", None),
    }
    if columns["type"] is None:
        return None
    return {name: value for name, value in columns.items() if value is not None}


def recorded_warnings(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The warnings the sweeper recorded on the run row (`RUN_WORKFLOW_TASK_FAILING`), taken out
    of `run`'s internal columns; an ended run has none."""
    stored = run.pop("workflow_task_failure_json", None)
    run.pop("cancel_requested_at", None)
    failure = decode_failure(stored)
    if failure is None or RunStatus(run["status"]).terminal:
        return []
    return [
        {
            "code": WARNING_CODE,
            "message": f"the workflow task keeps failing (attempt {failure.attempts}): "
            f"{failure.message}",
            "attempts": failure.attempts,
            "since": failure.since,
            "cause": failure.cause,
            "error": failure.message,
        }
    ]


async def get_run_raw(conn: Conn, tenant: uuid.UUID, run_id: uuid.UUID) -> dict[str, Any]:
    """The run row, unredacted (for replay and controls); another tenant's run is 404."""
    record = await conn.fetchrow(
        f"SELECT r.*, d.name AS workflow_name, {WAITING_ON_COLUMNS} FROM workflow_runs r"
        " LEFT JOIN workflow_definitions d ON d.workflow_id = r.workflow_id AND d.tenant = r.tenant"
        f" {WAITING_ON_JOIN}"
        " WHERE r.tenant = $1 AND r.run_id = $2",
        tenant,
        run_id,
    )
    if record is None:
        raise ApiError(404, "RUN_NOT_FOUND", f"run {run_id} not found")
    out = dict(record)
    out.pop("idempotency_hash", None)
    out["waiting_on"] = waiting_on(out)
    return out


async def get_run(
    conn: Conn, tenant: uuid.UUID, run_id: uuid.UUID, redactor: Redactor
) -> dict[str, Any]:
    """The run as the API reads it, with `warnings` recorded on the row."""
    out = await get_run_raw(conn, tenant, run_id)
    redact_fields(out, RUN_JSON_FIELDS, redactor)
    out["warnings"] = recorded_warnings(out)
    return out


async def step_count(conn: Conn, tenant: uuid.UUID, run_id: uuid.UUID) -> int:
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM workflow_run_steps WHERE tenant = $1 AND run_id = $2",
            tenant,
            run_id,
        )
    )


async def _fetch(
    conn: Conn, sql: str, tenant: uuid.UUID, run_id: uuid.UUID
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(sql, tenant, run_id)]


async def projections(
    conn: Conn, tenant: uuid.UUID, run_id: uuid.UUID, redactor: Redactor
) -> dict[str, Any]:
    """`{steps, invocations, waits, snapshots, quotaPause}` of a run, redacted."""
    steps = await _fetch(
        conn,
        "SELECT * FROM workflow_run_steps WHERE tenant = $1 AND run_id = $2"
        " ORDER BY started_at, step_id",
        tenant,
        run_id,
    )
    invocations = await _fetch(
        conn,
        "SELECT * FROM workflow_action_invocations WHERE tenant = $1 AND run_id = $2"
        " ORDER BY created_at, invocation_id",
        tenant,
        run_id,
    )
    waits = await _fetch(
        conn,
        "SELECT * FROM workflow_run_waits WHERE tenant = $1 AND run_id = $2"
        " ORDER BY created_at, wait_id",
        tenant,
        run_id,
    )
    snapshots = await _fetch(
        conn,
        "SELECT * FROM workflow_run_snapshots WHERE tenant = $1 AND run_id = $2"
        " ORDER BY created_at, snapshot_id",
        tenant,
        run_id,
    )
    for step in steps:
        redact_fields(step, ("error_json",), redactor)
    for invocation in invocations:
        redact_fields(invocation, ("input_json", "output_json", "error_json"), redactor)
    for wait in waits:
        redact_fields(wait, ("payload",), redactor)
    for snapshot in snapshots:
        redact_fields(snapshot, ("envelope_json",), redactor)
    return {
        "steps": steps,
        "invocations": invocations,
        "waits": waits,
        "snapshots": snapshots,
        "quotaPause": quota_pause(waits),
    }


def quota_pause(waits: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The open quota wait of a paused run (its payload already redacted), else None."""
    for wait in waits:
        if wait["wait_type"] == "quota" and wait["status"] == "WAITING":
            payload = wait["payload"] if isinstance(wait["payload"], dict) else {}
            return {
                **payload,
                "waitId": wait["wait_id"],
                "stepPath": wait["step_path"],
                "createdAt": wait["created_at"],
                "timeoutAt": wait["timeout_at"],
            }
    return None


def timeline(steps: list[dict[str, Any]], waits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for step in steps:
        events.append(
            {
                "type": "step",
                "timestamp": step["started_at"],
                **{
                    k: step.get(k)
                    for k in (
                        "step_id", "step_path", "definition_step_id", "step_type", "status",
                        "attempt", "duration_ms", "started_at", "completed_at", "error_json",
                    )
                },
            }
        )  # fmt: skip
    for wait in waits:
        events.append(
            {
                "type": "wait",
                "timestamp": wait["created_at"],
                **{
                    k: wait.get(k)
                    for k in (
                        "wait_id", "step_path", "wait_type", "status", "event_name", "key",
                        "timeout_at", "created_at", "resolved_at",
                    )
                },
            }
        )  # fmt: skip
    events.sort(key=lambda e: (e["timestamp"], e["type"]))
    return events


async def logs(
    conn: Conn,
    tenant: uuid.UUID,
    run_id: uuid.UUID,
    redactor: Redactor,
    *,
    levels: tuple[str, ...] = (),
    after: tuple[datetime, str] | None = None,
    limit: int = 10_000,
) -> list[dict[str, Any]]:
    records = await conn.fetch(
        "SELECT * FROM workflow_run_logs WHERE tenant = $1 AND run_id = $2"
        " AND (cardinality($3::text[]) = 0 OR level = ANY($3::text[]))"
        " AND ($4::timestamptz IS NULL OR (created_at, log_id) > ($4, $5::uuid))"
        " ORDER BY created_at, log_id LIMIT $6",
        tenant,
        run_id,
        list(levels),
        after[0] if after else None,
        uuid.UUID(after[1]) if after else None,
        limit,
    )
    out = [dict(r) for r in records]
    for line in out:
        redact_fields(line, ("context_json",), redactor)
    return out


async def counts(conn: Conn, tenant: uuid.UUID, run_id: uuid.UUID) -> dict[str, int]:
    record = await conn.fetchrow(
        "SELECT"
        " (SELECT count(*) FROM workflow_run_steps WHERE tenant = $1 AND run_id = $2) AS steps,"
        " (SELECT count(*) FROM workflow_run_waits WHERE tenant = $1 AND run_id = $2) AS waits,"
        " (SELECT count(*) FROM workflow_run_logs WHERE tenant = $1 AND run_id = $2) AS logs,"
        " (SELECT count(*) FROM workflow_action_invocations WHERE tenant = $1 AND run_id = $2)"
        " AS invocations",
        tenant,
        run_id,
    )
    assert record is not None
    return {k: int(v) for k, v in dict(record).items()}
