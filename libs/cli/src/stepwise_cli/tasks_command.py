"""`stepwise tasks list|show|complete`: the human tasks `human.task` steps wait on.

`complete TASK_ID --payload JSON|@FILE` answers a pending task; the API validates the payload
against the task's form schema (the issues are printed one per line) and resumes the run.
"""

from __future__ import annotations

import argparse
import json
import uuid
from typing import Any, Final

from stepwise_cli.api_client import (
    ApiClient,
    CliError,
    add_limit_option,
    api_command,
    json_argument,
    print_json,
)
from stepwise_cli.tables import short_time, table

TASKS: Final = "/api/workflow/tasks"
STATUSES: Final = ("PENDING", "COMPLETED", "CANCELED")


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a uuid") from None


async def tasks_list(args: argparse.Namespace, api: ApiClient) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    for name, value in (("status", args.status), ("runId", args.run), ("cursor", args.cursor)):
        if value:
            params[name] = value
    page = await api.get(TASKS, params)
    if args.json:
        print_json(page)
        return 0
    tasks = page["tasks"]
    if not tasks:
        print("no tasks")
        return 0
    print(
        table(
            ["TASK ID", "TYPE", "TITLE", "STATUS", "RUN ID", "CREATED (UTC)"],
            [
                [
                    t["task_id"],
                    t.get("task_type"),
                    t.get("title"),
                    t["status"],
                    t.get("run_id"),
                    short_time(t.get("created_at")),
                ]
                for t in tasks
            ],
        )
    )
    if page.get("nextCursor"):
        print(f"\nmore tasks: --cursor {page['nextCursor']}")
    return 0


async def tasks_show(args: argparse.Namespace, api: ApiClient) -> int:
    task = await api.get(f"{TASKS}/{args.task_id}")
    if args.json:
        print_json(task)
        return 0
    lines = [f"task {task['task_id']}  {task['status']}"]
    for label, field in (
        ("type", "task_type"),
        ("title", "title"),
        ("description", "description"),
        ("run", "run_id"),
        ("step", "step_path"),
    ):
        if task.get(field) is not None:
            lines.append(f"  {label:<12} {task[field]}")
    lines.append(f"  {'created':<12} {short_time(task.get('created_at'))} UTC")
    for label, field in (
        ("context", "context_data"),
        ("form schema", "form_schema"),
        ("response", "response_json"),
    ):
        if task.get(field) is not None:
            lines.append(f"  {label:<12} {json.dumps(task[field], ensure_ascii=False)}")
    print("\n".join(lines))
    return 0


async def tasks_complete(args: argparse.Namespace, api: ApiClient) -> int:
    payload = {} if args.payload is None else args.payload
    if not isinstance(payload, dict):
        raise CliError("--payload must be a JSON object")
    answer = await api.post(f"{TASKS}/{args.task_id}/complete", {"payload": payload})
    if args.json:
        print_json(answer)
    else:
        print(f"completed task {args.task_id}; run {answer.get('runId')} resumes")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tasks = subparsers.add_parser("tasks", help="list, show and complete human tasks")
    verbs = tasks.add_subparsers(dest="tasks_command", required=True, metavar="COMMAND")

    listing = api_command(verbs, "list", "list human tasks, newest first", tasks_list)
    listing.add_argument("--status", choices=STATUSES)
    listing.add_argument("--run", type=_uuid, metavar="RUN_ID", help="the tasks of one run")
    add_limit_option(listing)
    listing.add_argument("--cursor", help="the next page (printed under a full page)")
    show = api_command(verbs, "show", "one task: context, form schema, response", tasks_show)
    show.add_argument("task_id", type=_uuid, metavar="TASK_ID")
    complete = api_command(verbs, "complete", "answer a pending task (manage key)", tasks_complete)
    complete.add_argument("task_id", type=_uuid, metavar="TASK_ID")
    complete.add_argument(
        "--payload", type=json_argument, metavar="JSON|@FILE", help="the answer ({})"
    )
