"""`/api/workflow/tasks`: human tasks created by `human.task` steps; completing one signals the
waiting run (SPEC §7)."""

from __future__ import annotations

import uuid
from typing import Any

from aiohttp import web
from stepwise_contract.enums import Role, TaskStatus
from stepwise_contract.http import CompleteTaskRequest
from stepwise_contract.names import SIGNAL_HUMAN_TASK
from stepwise_contract.payloads import HumanTaskSignal
from stepwise_contract.schemas import InvalidSchemaError, validate_instance

from stepwise_api import api_schemas as s
from stepwise_api.auth import Principal
from stepwise_api.bodies import typed_body
from stepwise_api.deps import deps_of
from stepwise_api.errors import ApiError
from stepwise_api.params import limit, make_time_id_cursor, path_uuid, query_uuid, time_id_cursor
from stepwise_api.responses import json_response
from stepwise_api.route_table import Param, Reply, Route
from stepwise_api.run_signals import signal_run

REDACTED_FIELDS = ("context_data", "response_json")


async def list_tasks(request: web.Request, principal: Principal) -> web.StreamResponse:
    status = request.query.get("status") or None
    if status is not None and status not in TaskStatus.__members__:
        raise ApiError(400, "INVALID_PARAMETER", f"status must be one of {list(TaskStatus)}")
    run_id = query_uuid(request, "runId")
    after = time_id_cursor(request)
    size = limit(request)
    records = await deps_of(request).pool.fetch(
        "SELECT * FROM workflow_tasks WHERE tenant = $1"
        " AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR run_id = $3)"
        " AND ($4::timestamptz IS NULL OR (created_at, task_id) < ($4, $5::uuid))"
        " ORDER BY created_at DESC, task_id DESC LIMIT $6",
        principal.tenant,
        status,
        run_id,
        after[0] if after else None,
        uuid.UUID(after[1]) if after else None,
        size,
    )
    tasks = [_redacted(record, principal) for record in records]
    last = tasks[-1] if len(tasks) == size else None
    next_cursor = make_time_id_cursor(last["created_at"], last["task_id"]) if last else None
    return json_response({"tasks": tasks, "nextCursor": next_cursor})


def _redacted(record: Any, principal: Principal) -> dict[str, Any]:
    task = dict(record)
    for field in REDACTED_FIELDS:
        if task[field] is not None:
            task[field] = principal.redactor.document(task[field])
    return task


async def get_task(request: web.Request, principal: Principal) -> web.StreamResponse:
    task_id = path_uuid(request, "taskId", "task")
    record = await deps_of(request).pool.fetchrow(
        "SELECT * FROM workflow_tasks WHERE tenant = $1 AND task_id = $2",
        principal.tenant,
        task_id,
    )
    if record is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"task {task_id} not found")
    return json_response(_redacted(record, principal))


async def complete_task(request: web.Request, principal: Principal) -> web.StreamResponse:
    task_id = path_uuid(request, "taskId", "task")
    body = await typed_body(request, CompleteTaskRequest)
    deps = deps_of(request)
    task = await deps.pool.fetchrow(
        "SELECT run_id, status, form_schema FROM workflow_tasks WHERE tenant = $1 AND task_id = $2",
        principal.tenant,
        task_id,
    )
    if task is None:
        raise ApiError(404, "TASK_NOT_FOUND", f"task {task_id} not found")
    if task["status"] != TaskStatus.PENDING:
        raise ApiError(409, "TASK_NOT_PENDING", f"the task is already {task['status']}")
    if task["form_schema"] is not None:
        try:
            issues = validate_instance(task["form_schema"], body.payload)
        except InvalidSchemaError as exc:
            raise ApiError(409, "INVALID_FORM_SCHEMA", f"the task's form schema: {exc}") from None
        if issues:
            raise ApiError(
                400,
                "PAYLOAD_INVALID",
                "the payload does not match the task's form schema",
                errors=[{"path": i.path, "message": i.message} for i in issues],
            )
    # Claim the task and signal inside one transaction: a concurrent completion waits on the row
    # lock and then finds it COMPLETED; a refused signal rolls the claim back.
    async with deps.pool.acquire() as conn, conn.transaction():
        run_id = await conn.fetchval(
            "UPDATE workflow_tasks SET status = 'COMPLETED', response_json = $3,"
            " completed_at = now(), updated_at = now()"
            " WHERE tenant = $1 AND task_id = $2 AND status = 'PENDING' RETURNING run_id",
            principal.tenant,
            task_id,
            body.payload,
        )
        if run_id is None:
            raise ApiError(409, "TASK_NOT_PENDING", "the task was completed or canceled meanwhile")
        await signal_run(
            deps.temporal,
            run_id,
            SIGNAL_HUMAN_TASK,
            HumanTaskSignal(task_id=str(task_id), payload=body.payload),
        )
    return json_response({"ok": True, "taskId": task_id, "runId": run_id})


ROUTES = [
    Route(
        "GET",
        "/api/workflow/tasks",
        list_tasks,
        Role.READ,
        "Human tasks (filter by status or run)",
        "tasks",
        query=(
            Param("status", {"enum": [t.value for t in TaskStatus]}),
            Param("runId", {"type": "string", "format": "uuid"}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            Param("cursor", {"type": "string"}),
        ),
        replies={200: Reply("a page of tasks", s.page("tasks", s.TASK_ROW))},
    ),
    Route(
        "GET",
        "/api/workflow/tasks/{taskId}",
        get_task,
        Role.READ,
        "One human task (context and response redacted)",
        "tasks",
        path_params={"taskId": {"type": "string", "format": "uuid"}},
        replies={200: Reply("the task", s.TASK_ROW)},
    ),
    Route(
        "POST",
        "/api/workflow/tasks/{taskId}/complete",
        complete_task,
        Role.MANAGE,
        "Complete a pending task: validated against its form schema, then the run is signalled",
        "tasks",
        write=True,
        body=CompleteTaskRequest,
        path_params={"taskId": {"type": "string", "format": "uuid"}},
        replies={200: Reply("completed", s.TASK_COMPLETED)},
    ),
]
