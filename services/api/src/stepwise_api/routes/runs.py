"""`/api/workflow-runs`: launch, list, CSV export (SPEC §7)."""

from __future__ import annotations

import csv
import io
import uuid
from typing import Any

from aiohttp import web
from stepwise_contract.enums import Role
from stepwise_contract.http import LaunchRequest

from stepwise_api import api_schemas as s
from stepwise_api import run_store
from stepwise_api.auth import Principal
from stepwise_api.bodies import typed_body
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.launcher import LaunchSpec
from stepwise_api.params import (
    limit,
    make_time_id_cursor,
    query_datetime,
    query_int,
    query_list,
    query_uuid,
    time_id_cursor,
)
from stepwise_api.responses import json_response
from stepwise_api.route_table import Param, Reply, Route

CSV_COLUMNS = (
    "run_id", "workflow_name", "workflow_id", "workflow_version", "status", "tenant",
    "started_at", "updated_at", "completed_at",
)  # fmt: skip
FILTER_PARAMS = (
    Param(
        "status",
        {
            "type": "array",
            "items": {"enum": ["RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELED"]},
        },
        "repeatable",
    ),
    Param("workflowId", {"type": "string", "format": "uuid"}),
    Param("workflow", {"type": "string", "maxLength": 200}, "the workflow's id, key or exact name"),
    Param(
        "waitingOn",
        {"type": "array", "items": {"enum": list(run_store.WAIT_TYPES)}},
        "repeatable: open runs with an open wait of this type",
    ),
    Param("version", {"type": "integer", "minimum": 1, "maximum": 2147483647}),
    Param("search", {"type": "string", "maxLength": 200}),
    Param("from", {"type": "string", "format": "date-time"}, "started at or after"),
    Param("to", {"type": "string", "format": "date-time"}, "started before"),
    Param("sort", {"enum": sorted(run_store.SORTS)}),
)


def run_filter(request: web.Request) -> run_store.RunFilter:
    return run_store.RunFilter(
        statuses=tuple(query_list(request, "status")),
        workflow_id=query_uuid(request, "workflowId"),
        workflow=request.query.get("workflow") or None,
        waiting_on=tuple(query_list(request, "waitingOn")),
        version=query_int(request, "version", minimum=1, maximum=2**31 - 1),
        search=request.query.get("search") or None,
        started_from=query_datetime(request, "from"),
        started_to=query_datetime(request, "to"),
        sort=request.query.get("sort") or "started_at:desc",
    )


def _idempotency_key(request: web.Request) -> str | None:
    raw = request.headers.get("Idempotency-Key")
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > 255:
        raise ApiError(400, "INVALID_IDEMPOTENCY_KEY", "Idempotency-Key must be 1-255 characters")
    return key


async def launch_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    key = _idempotency_key(request)
    body = await typed_body(request, LaunchRequest)
    try:
        as_id: uuid.UUID | None = uuid.UUID(body.workflow_id)
    except ValueError:
        as_id = None
    launched = await deps_of(request).launcher.launch(
        LaunchSpec(
            tenant=principal.tenant,
            workflow_id=as_id,
            workflow_key=body.workflow_id,
            workflow_version=body.workflow_version,
            payload=body.payload,
            idempotency_key=key,
            priority=body.priority,
            may_raise_priority=principal.role is Role.ADMIN,
            trigger_metadata={"launchedBy": principal.launched_by()},
        )
    )
    return json_response(launched.body(), status=201 if launched.created else 200)


async def list_runs(request: web.Request, principal: Principal) -> web.StreamResponse:
    flt = run_filter(request)
    size = limit(request)
    runs = await run_store.list_runs(
        deps_of(request).pool,
        principal.tenant,
        flt,
        time_id_cursor(request),
        size,
        principal.redactor,
    )
    column = run_store.SORTS[flt.sort][0]
    last = runs[-1] if len(runs) == size else None
    next_cursor = make_time_id_cursor(last[column], last["run_id"]) if last else None
    return json_response({"runs": runs, "nextCursor": next_cursor})


def _csv_cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A cell starting with = + - @ would be a formula in a spreadsheet (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


async def export_runs(request: web.Request, principal: Principal) -> web.StreamResponse:
    flt = run_filter(request)
    size = limit(request, default=1000, maximum=10_000)
    runs = await run_store.list_runs(
        deps_of(request).pool, principal.tenant, flt, None, size, principal.redactor
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        writer.writerow([_csv_cell(run.get(c)) for c in CSV_COLUMNS])
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="workflow-runs.csv"'},
    )


PAGE = (
    Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
    Param("cursor", {"type": "string"}),
)
ROUTES = [
    Route(
        "POST",
        "/api/workflow-runs",
        launch_run,
        Role.MANAGE,
        "Launch a run of a published version; workflowId is the workflow's id or its key"
        " (optional Idempotency-Key header)",
        "runs",
        write=True,
        body=LaunchRequest,
        query=(),
        replies={
            200: Reply("the run of an earlier request with the same Idempotency-Key", s.LAUNCHED),
            201: Reply("launched", s.LAUNCHED),
        },
    ),
    Route(
        "GET",
        "/api/workflow-runs",
        list_runs,
        Role.READ,
        "List runs (filters, sort, keyset cursor)",
        "runs",
        query=(*FILTER_PARAMS, *PAGE),
        replies={200: Reply("a page of runs", s.page("runs", s.RUN_SUMMARY))},
    ),
    # Registered before `/api/workflow-runs/{runId}` so `export` is never taken for a run id.
    Route(
        "GET",
        "/api/workflow-runs/export",
        export_runs,
        Role.READ,
        "CSV of the filtered runs (default 1000 rows, at most 10000)",
        "runs",
        query=(*FILTER_PARAMS, Param("limit", {"type": "integer", "minimum": 1, "maximum": 10000})),
        replies={200: Reply("CSV attachment workflow-runs.csv", {"type": "string"}, "text/csv")},
    ),
]
