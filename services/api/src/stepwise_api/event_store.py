"""Reads of recorded events (`workflow_runtime_events`, written by the router) with a status:
`pending` (not processed yet), `error`, `matched` (a run signalled or started), `unmatched`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from stepwise_api.db import Conn
from stepwise_api.errors import ApiError
from stepwise_api.redaction import Redactor

STATUS_SQL = """CASE WHEN processed_at IS NULL THEN 'pending'
     WHEN error_message IS NOT NULL THEN 'error'
     WHEN matched_run_id IS NOT NULL OR cardinality(signaled_run_ids) > 0
          OR cardinality(started_run_ids) > 0 THEN 'matched'
     ELSE 'unmatched' END"""
COLUMNS = f"""tenant, event_id, event_name, event_type, correlation_key, correlation_keys, payload,
    payload_schema_ref, created_at, processed_at, matched_run_id, matched_wait_id,
    signaled_run_ids, started_run_ids, error_message, {STATUS_SQL} AS status"""
STATUSES = ("matched", "unmatched", "error", "pending")


@dataclass(frozen=True)
class EventFilter:
    event_name: str | None = None
    correlation_key: str | None = None
    status: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in STATUSES:
            raise ApiError(400, "INVALID_PARAMETER", f"status must be one of {list(STATUSES)}")

    def where(self, tenant: uuid.UUID) -> tuple[list[str], list[Any]]:
        args: list[Any] = [tenant]
        where = ["tenant = $1"]
        for clause, value in (
            ("event_name = {}", self.event_name),
            ("(correlation_key = {0} OR {0} = ANY(correlation_keys))", self.correlation_key),
            (f"({STATUS_SQL}) = {{}}", self.status),
            ("created_at >= {}", self.created_from),
            ("created_at < {}", self.created_to),
        ):
            if value is not None:
                args.append(value)
                where.append(clause.format(f"${len(args)}"))
        return where, args


def redact_event(record: asyncpg.Record, redactor: Redactor) -> dict[str, Any]:
    out = dict(record)
    out["payload"] = redactor.document(out["payload"])
    return out


async def list_events(
    conn: Conn,
    tenant: uuid.UUID,
    flt: EventFilter,
    after: tuple[datetime, str] | None,
    limit: int,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    where, args = flt.where(tenant)
    if after is not None:
        args.extend(after)
        where.append(f"(created_at, event_id) < (${len(args) - 1}::timestamptz, ${len(args)})")
    args.append(limit)
    records = await conn.fetch(
        f"SELECT {COLUMNS} FROM workflow_runtime_events WHERE {' AND '.join(where)}"
        f" ORDER BY created_at DESC, event_id DESC LIMIT ${len(args)}",
        *args,
    )
    return [redact_event(r, redactor) for r in records]


async def get_event(
    conn: Conn, tenant: uuid.UUID, event_id: str, redactor: Redactor
) -> dict[str, Any]:
    record = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM workflow_runtime_events WHERE tenant = $1 AND event_id = $2",
        tenant,
        event_id,
    )
    if record is None:
        raise ApiError(404, "EVENT_NOT_FOUND", f"event {event_id!r} not found")
    return redact_event(record, redactor)


async def summary(conn: Conn, tenant: uuid.UUID, flt: EventFilter) -> dict[str, int]:
    where, args = flt.where(tenant)
    records = await conn.fetch(
        f"SELECT {STATUS_SQL} AS status, count(*) AS n FROM workflow_runtime_events"
        f" WHERE {' AND '.join(where)} GROUP BY 1",
        *args,
    )
    out = {status: 0 for status in STATUSES}
    for r in records:
        out[r["status"]] = int(r["n"])
    return {"total": sum(out.values()), **out}


async def routing_result(conn: Conn, tenant: uuid.UUID, event_id: str) -> dict[str, Any] | None:
    """The router's outcome for `?wait=`: None while the event is not processed."""
    record = await conn.fetchrow(
        "SELECT processed_at, matched_run_id, signaled_run_ids, started_run_ids, error_message,"
        " correlation_key, correlation_keys FROM workflow_runtime_events"
        " WHERE tenant = $1 AND event_id = $2",
        tenant,
        event_id,
    )
    if record is None or record["processed_at"] is None:
        return None
    started = list(record["started_run_ids"] or [])
    signaled = list(record["signaled_run_ids"] or [])
    matched = record["matched_run_id"]
    if not signaled and matched is not None and matched not in started:
        signaled = [matched]
    if record["error_message"]:
        status = "error"
    elif signaled:
        status = "resumed"
    else:
        status = "no_wait"
    out: dict[str, Any] = {
        "eventId": event_id,
        "status": status,
        "runId": signaled[0] if len(signaled) == 1 else None,
        "signaledRuns": signaled,
        "startedRuns": started,
    }
    if record["error_message"]:
        out["warning"] = record["error_message"]
    elif not signaled and not record["correlation_key"] and not record["correlation_keys"]:
        out["warning"] = "the event has no correlation key: only waits without a key can match it"
    return out
