"""Run controls: cancel, replay, quota resume (admin). There is no retry/resume/requeue (404)."""

from __future__ import annotations

import msgspec
from aiohttp import web
from stepwise_contract.enums import Role
from stepwise_contract.http import CancelRequest, QuotaResumeRequest, ReplayRequest

from stepwise_api import api_schemas as s
from stepwise_api import run_controls
from stepwise_api.auth import Principal
from stepwise_api.bodies import typed_body
from stepwise_api.deps import deps_of
from stepwise_api.params import path_uuid
from stepwise_api.responses import json_response
from stepwise_api.route_table import Reply, Route

RUN = {"runId": {"type": "string", "format": "uuid"}}


def _actor(principal: Principal) -> str:
    return f"api-key:{principal.key_id}"


async def cancel_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    body = await typed_body(request, CancelRequest)
    reason = run_controls.check_reason(body.reason)
    deps = deps_of(request)
    await run_controls.cancel_run(
        deps.pool, deps.temporal, principal.tenant, run_id, reason, _actor(principal)
    )
    return json_response({"ok": True})


async def replay_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    body = await typed_body(request, ReplayRequest)
    reason = run_controls.check_reason(body.reason)
    payload = None if isinstance(body.payload, msgspec.UnsetType) else body.payload
    launched = await run_controls.replay_run(
        deps_of(request).pool,
        deps_of(request).launcher,
        principal,
        run_id,
        reason,
        payload,
        body.priority,
    )
    return json_response({"ok": True, "runId": launched.run_id}, status=201)


async def quota_resume_run(request: web.Request, principal: Principal) -> web.StreamResponse:
    run_id = path_uuid(request, "runId", "run")
    body = await typed_body(request, QuotaResumeRequest, optional=True)
    deps = deps_of(request)
    wait_id = await run_controls.quota_resume(
        deps.pool,
        deps.temporal,
        principal.tenant,
        run_id,
        body.reason.strip() or "operator",
        _actor(principal),
    )
    return json_response({"ok": True, "resumed": True, "waitId": wait_id})


_ONE = "/api/workflow-runs/{runId}"
ROUTES = [
    Route(
        "POST",
        _ONE + "/cancel",
        cancel_run,
        Role.ADMIN,
        "Cancel a run: Temporal first, then the projections (409 when Temporal refuses)",
        "controls",
        write=True,
        body=CancelRequest,
        path_params=RUN,
        replies={200: Reply("canceled", s.OK)},
    ),
    Route(
        "POST",
        _ONE + "/replay",
        replay_run,
        Role.ADMIN,
        "Start a new run of the same workflow version; absent payload = the original input",
        "controls",
        write=True,
        body=ReplayRequest,
        path_params=RUN,
        replies={201: Reply("the new run", s.REPLAYED)},
    ),
    Route(
        "POST",
        _ONE + "/quota-resume",
        quota_resume_run,
        Role.ADMIN,
        "Resume a quota-paused run when the tenant has step capacity (409 with the figures)",
        "controls",
        write=True,
        body=QuotaResumeRequest,
        body_required=False,
        path_params=RUN,
        replies={200: Reply("resumed", s.QUOTA_RESUMED)},
    ),
]
