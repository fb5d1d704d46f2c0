"""`/api/workflow-runs/{runId}` reads: run, steps, timeline, logs, summary, JSON export."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

import msgspec
from aiohttp import web
from stepwise_contract.enums import LogLevel, Role

from stepwise_api import api_schemas as s
from stepwise_api import queue_probe, run_store
from stepwise_api.auth import Principal
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.params import limit, make_time_id_cursor, path_uuid, query_list, time_id_cursor
from stepwise_api.responses import json_response
from stepwise_api.route_table import Param, Reply, Route

RUN = {"runId": {"type": "string", "format": "uuid"}}


async def get_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    deps = deps_of(request)
    run = await run_store.get_run(deps.pool, principal.tenant, run_id, principal.redactor)
    warnings: list[dict[str, Any]] = run.pop("warnings")
    # a run whose workflow task fails was picked up: "queued" would send the reader elsewhere
    if run["status"] == "RUNNING" and not warnings:
        steps = await run_store.step_count(deps.pool, principal.tenant, run_id)
        if queue_probe.is_stuck(
            run["status"], run["started_at"], steps, deps.settings.stuck_run_threshold_s
        ):
            warnings.append(await queue_probe.warning(deps.temporal, run["started_at"]))
    return json_response({**run, "warnings": warnings})


async def get_run_steps(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    pool = deps_of(request).pool
    await run_store.get_run_raw(pool, principal.tenant, run_id)
    return json_response(
        await run_store.projections(pool, principal.tenant, run_id, principal.redactor)
    )


async def get_run_timeline(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    pool = deps_of(request).pool
    await run_store.get_run_raw(pool, principal.tenant, run_id)
    parts = await run_store.projections(pool, principal.tenant, run_id, principal.redactor)
    return json_response({"events": run_store.timeline(parts["steps"], parts["waits"])})


async def get_run_logs(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    levels = tuple(query_list(request, "level"))
    for level in levels:
        if level not in LogLevel.__members__:
            raise ApiError(400, "INVALID_PARAMETER", f"unknown log level {level!r}")
    size = limit(request)
    pool = deps_of(request).pool
    await run_store.get_run_raw(pool, principal.tenant, run_id)
    lines = await run_store.logs(
        pool,
        principal.tenant,
        run_id,
        principal.redactor,
        levels=levels,
        after=time_id_cursor(request),
        limit=size,
    )
    last = lines[-1] if len(lines) == size else None
    return json_response(
        {
            "logs": lines,
            "nextCursor": make_time_id_cursor(last["created_at"], last["log_id"]) if last else None,
        }
    )


def _duration_ms(started: datetime, completed: datetime | None) -> int | None:
    if completed is None:
        return None
    ms = int((completed - started).total_seconds() * 1000)
    return ms if ms >= 0 else None


async def get_run_summary(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    pool = deps_of(request).pool
    run = await run_store.get_run_raw(pool, principal.tenant, run_id)
    counts = await run_store.counts(pool, principal.tenant, run_id)
    return json_response(
        {
            "runId": run["run_id"],
            "status": run["status"],
            "workflowId": run["workflow_id"],
            "workflowName": run["workflow_name"],
            "workflowVersion": run["workflow_version"],
            "eventType": run["event_type"],
            "triggerType": run["trigger_type"],
            "startedAt": run["started_at"],
            "completedAt": run["completed_at"],
            "durationMs": _duration_ms(run["started_at"], run["completed_at"]),
            "stepsCount": counts["steps"],
            "waitsCount": counts["waits"],
            "logsCount": counts["logs"],
            "invocationsCount": counts["invocations"],
        }
    )


async def export_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    pool = deps_of(request).pool
    # the export is the complete record: redacted as every read, but no value cut short
    whole = dataclasses.replace(principal.redactor, shorten_large=False)
    run = await run_store.get_run(pool, principal.tenant, run_id, whole)
    parts = await run_store.projections(pool, principal.tenant, run_id, whole)
    lines = await run_store.logs(pool, principal.tenant, run_id, whole)
    document: dict[str, Any] = {
        "run": run,
        "steps": parts["steps"],
        "invocations": parts["invocations"],
        "waits": parts["waits"],
        "snapshots": parts["snapshots"],
        "logs": lines,
        "quotaPause": parts["quotaPause"],
    }
    body = msgspec.json.format(msgspec.json.encode(document), indent=2)
    return web.Response(
        body=body,
        content_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="workflow-run-{run_id}.json"'},
    )


_ONE = "/api/workflow-runs/{runId}"
ROUTES = [
    Route(
        "GET",
        _ONE,
        get_run,
        Role.READ,
        "Get a run (JSON fields redacted) with warnings: RUN_QUEUED_NO_PROGRESS,"
        " RUN_WORKFLOW_TASK_FAILING",
        "runs",
        path_params=RUN,
        replies={200: Reply("the run", s.RUN)},
    ),
    Route(
        "GET",
        _ONE + "/steps",
        get_run_steps,
        Role.READ,
        "Steps, invocations, waits, snapshots and the quota pause of a run (redacted)",
        "runs",
        path_params=RUN,
        replies={200: Reply("the run's projections", s.STEPS)},
    ),
    Route(
        "GET",
        _ONE + "/timeline",
        get_run_timeline,
        Role.READ,
        "Step and wait events of a run by time",
        "runs",
        path_params=RUN,
        replies={200: Reply("the timeline", s.TIMELINE)},
    ),
    Route(
        "GET",
        _ONE + "/logs",
        get_run_logs,
        Role.READ,
        "Log lines of a run (redacted), oldest first",
        "runs",
        path_params=RUN,
        query=(
            Param("level", {"type": "array", "items": {"enum": [lv.value for lv in LogLevel]}}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            Param("cursor", {"type": "string"}),
        ),
        replies={200: Reply("a page of log lines", s.page("logs", s.LOG_ROW))},
    ),
    Route(
        "GET",
        _ONE + "/summary",
        get_run_summary,
        Role.READ,
        "Counts and duration of a run",
        "runs",
        path_params=RUN,
        replies={200: Reply("the summary", s.SUMMARY)},
    ),
    Route(
        "GET",
        _ONE + "/export",
        export_run,
        Role.READ,
        "JSON attachment workflow-run-<id>.json with everything about the run (redacted)",
        "runs",
        path_params=RUN,
        replies={200: Reply("the export", s.EXPORT)},
    ),
]
