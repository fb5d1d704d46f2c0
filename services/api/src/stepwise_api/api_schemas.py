"""JSON Schemas of the answers, for the OpenAPI document (requests come from the contract's
msgspec Structs). Row schemas name their key columns and allow the others."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

STRING: Schema = {"type": "string"}
UUID: Schema = {"type": "string", "format": "uuid"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
ANY: Schema = {}


def nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def obj(props: dict[str, Schema], required: list[str] | None = None, extra: bool = True) -> Schema:
    out: Schema = {"type": "object", "properties": props, "required": required or list(props)}
    if not extra:
        out["additionalProperties"] = False
    return out


def array(item: Schema) -> Schema:
    return {"type": "array", "items": item}


def page(key: str, item: Schema) -> Schema:
    return obj({key: array(item), "nextCursor": nullable(STRING)})


PROBLEM = obj(
    {
        "type": STRING,
        "title": STRING,
        "status": INT,
        "detail": STRING,
        "code": STRING,
        "errors": array(ANY),
    },
    required=["type", "title", "status", "detail", "code"],
)

VALIDATION_ITEM = obj(
    {
        "severity": {"enum": ["error", "warning"]},
        "code": STRING,
        "message": STRING,
        "stepPath": nullable(STRING),
        "stepId": STRING,
    },
    required=["severity", "code", "message", "stepPath"],
)
VALIDATION = obj(
    {
        "status": {"enum": ["valid", "warning", "error"]},
        "errors": array(VALIDATION_ITEM),
        "warnings": array(VALIDATION_ITEM),
    }
)

SCHEMA_ROW = obj(
    {"schema_ref": STRING, "schema_json": ANY, "builtin": BOOL, "created_at": TIME},
)

DEFINITION_SUMMARY = obj(
    {
        "workflow_id": UUID,
        "key": nullable(STRING),
        "name": STRING,
        "status": {"enum": ["draft", "published"]},
        "draft_version": INT,
        "latest_published_version": nullable(INT),
        "is_paused": BOOL,
        "concurrency_limit": nullable(INT),
    }
)
# the list's items also count the runs started in the last 24 hours and the failed ones of those
DEFINITION_LIST_ITEM = {"allOf": [DEFINITION_SUMMARY, obj({"runs_24h": INT, "failed_24h": INT})]}
VERSION_SUMMARY = obj({"version": INT, "definition_hash": STRING, "published_at": TIME})
DEFINITION = {
    "allOf": [
        DEFINITION_SUMMARY,
        obj({"draft_definition": ANY, "versions": array(VERSION_SUMMARY)}),
    ]
}
VERSION_ROW = obj(
    {
        "version_id": UUID,
        "workflow_id": UUID,
        "version": INT,
        "definition_json": ANY,
        "payload_schema_json": ANY,
        "definition_hash": STRING,
        "published_at": TIME,
    }
)
DRAFT_RESULT = obj({"workflowId": UUID, "draftVersion": INT, "validation": VALIDATION})
PUBLISH_RESULT = obj({"version": INT, "validation": VALIDATION})

RUN_STATUS: Schema = {"enum": ["RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELED"]}
# RUN_QUEUED_NO_PROGRESS (run read only) and RUN_WORKFLOW_TASK_FAILING (read and list), which
# also carries the attempt of the pending workflow task, since when it fails, Temporal's failure
# cause and the failure message alone
WARNING = obj(
    {
        "code": {"enum": ["RUN_QUEUED_NO_PROGRESS", "RUN_WORKFLOW_TASK_FAILING"]},
        "message": STRING,
        "attempts": INT,
        "since": TIME,
        "cause": nullable(STRING),
        "error": STRING,
    },
    required=["code", "message"],
)
# what an open run waits on: its open wait (the newest), with the human task's title
WAITING_ON = obj(
    {
        "type": {"enum": ["event", "time", "human", "quota"]},
        "event_name": STRING,
        "key": STRING,
        "until": TIME,
        "task_title": STRING,
    },
    required=["type"],
)
RUN_SUMMARY = obj(
    {
        "run_id": UUID,
        "workflow_id": UUID,
        "workflow_version": INT,
        "status": RUN_STATUS,
        "priority": {"type": "integer", "minimum": 1, "maximum": 5},
        "started_at": TIME,
        "completed_at": nullable(TIME),
        "updated_at": TIME,
        "warnings": array(WARNING),
        "waiting_on": nullable(WAITING_ON),
    }
)
RUN = {
    "allOf": [
        RUN_SUMMARY,
        obj({"input_json": ANY, "error_json": ANY}),
    ]
}
LAUNCHED = obj({"runId": UUID, "status": RUN_STATUS, "workflowVersion": INT})
STEP_ROW = obj({"step_id": UUID, "run_id": UUID, "step_path": STRING, "status": STRING})
WAIT_ROW = obj(
    {"wait_id": UUID, "run_id": UUID, "wait_type": STRING, "status": STRING, "payload": ANY}
)
INVOCATION_ROW = obj({"invocation_id": UUID, "run_id": UUID, "action_id": STRING})
SNAPSHOT_ROW = obj({"snapshot_id": UUID, "run_id": UUID})
LOG_ROW = obj(
    {"log_id": UUID, "run_id": UUID, "level": STRING, "message": STRING, "created_at": TIME}
)
QUOTA_PAUSE = nullable(obj({"waitId": UUID, "stepPath": STRING}))
STEPS = obj(
    {
        "steps": array(STEP_ROW),
        "invocations": array(INVOCATION_ROW),
        "waits": array(WAIT_ROW),
        "snapshots": array(SNAPSHOT_ROW),
        "quotaPause": QUOTA_PAUSE,
    }
)
TIMELINE = obj({"events": array(obj({"type": {"enum": ["step", "wait"]}, "timestamp": TIME}))})
SUMMARY = obj(
    {
        "runId": UUID,
        "status": RUN_STATUS,
        "workflowId": UUID,
        "workflowVersion": INT,
        "startedAt": TIME,
        "completedAt": nullable(TIME),
        "durationMs": nullable(INT),
        "stepsCount": INT,
        "waitsCount": INT,
        "logsCount": INT,
        "invocationsCount": INT,
    }
)
EXPORT = obj(
    {
        "run": RUN_SUMMARY,
        "steps": array(STEP_ROW),
        "invocations": array(INVOCATION_ROW),
        "waits": array(WAIT_ROW),
        "snapshots": array(SNAPSHOT_ROW),
        "logs": array(LOG_ROW),
        "quotaPause": QUOTA_PAUSE,
    }
)
OK = obj({"ok": {"const": True}})
REPLAYED = obj({"ok": {"const": True}, "runId": UUID})
QUOTA_RESUMED = obj({"ok": {"const": True}, "resumed": BOOL, "waitId": UUID})

EVENT_STATUS: Schema = {"enum": ["matched", "unmatched", "error", "pending"]}
EVENT_ROW = obj(
    {
        "event_id": STRING,
        "event_name": STRING,
        "correlation_key": nullable(STRING),
        "payload": ANY,
        "created_at": TIME,
        "processed_at": nullable(TIME),
        "status": EVENT_STATUS,
    }
)
EVENT_ACCEPTED = obj(
    {"eventId": STRING, "status": {"const": "accepted"}, "warning": STRING},
    required=["eventId", "status"],
)
EVENT_ROUTED = obj(
    {
        "eventId": STRING,
        "status": {"enum": ["resumed", "no_wait", "error"]},
        "runId": nullable(UUID),
        "signaledRuns": array(UUID),
        "startedRuns": array(UUID),
        "warning": STRING,
    },
    required=["eventId", "status", "runId", "signaledRuns", "startedRuns"],
)
EVENT_SUMMARY = obj({"total": INT, "matched": INT, "unmatched": INT, "error": INT, "pending": INT})
DEAD_LETTER = obj(
    {
        "sequence": INT,
        "receivedAt": TIME,
        "subject": STRING,
        "originalSubject": nullable(STRING),
        "reason": nullable(STRING),
        "detail": nullable(STRING),
        "eventId": nullable(STRING),
        "eventName": nullable(STRING),
        "bodyBytes": INT,
        "bodyIsJson": BOOL,
        "body": ANY,
    }
)
DEAD_LETTERS = obj({"deadLetters": array(DEAD_LETTER)})
TASK_ROW = obj(
    {
        "task_id": UUID,
        "run_id": UUID,
        "task_type": STRING,
        "title": STRING,
        "status": {"enum": ["PENDING", "COMPLETED", "CANCELED"]},
        "form_schema": ANY,
    }
)
TASK_COMPLETED = obj({"ok": {"const": True}, "taskId": UUID, "runId": UUID})
