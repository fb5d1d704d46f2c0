"""`stepwise runs start|list|show|tail|cancel|replay|export`: operating on runs through the API.

`start` launches a run of a workflow named by its id or key; with `--wait` it then polls until the
run ends and exits like `tail` (0 SUCCEEDED, 1 FAILED/CANCELED, 2 still running at `--timeout`).

`tail` is a live progress view: it polls the run, its steps/waits and its logs, prints each new
transition once, and ends when the run is terminal (exit 0 for SUCCEEDED, 1 for FAILED/CANCELED).
With `--json` it prints one JSON object per line (`{"type": "step"|"wait"|"log"|"run", ...}`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from stepwise_cli.api_client import (
    PAGE_LIMIT,
    ApiClient,
    CliError,
    add_limit_option,
    api_command,
    json_argument,
    print_json,
)
from stepwise_cli.definitions_command import resolve_workflow
from stepwise_cli.tables import clock, duration, elapsed_ms, parse_time, short_time, table

STATUSES: Final = ("RUNNING", "WAITING", "SUCCEEDED", "FAILED", "CANCELED")
WAIT_TYPES: Final = ("event", "time", "human", "quota")
TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})
RUNS: Final = "/api/workflow-runs"


def _run_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a run id (a uuid)") from None


# --- start ----------------------------------------------------------------------------------


async def runs_start(args: argparse.Namespace, api: ApiClient) -> int:
    payload = {} if args.payload is None else args.payload
    if not isinstance(payload, dict):
        raise CliError("--payload must be a JSON object")
    body: dict[str, Any] = {"workflowId": args.workflow, "payload": payload}
    if args.version is not None:
        body["workflowVersion"] = args.version
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    launched = await api.post(RUNS, body, headers=headers)
    run_id = str(launched["runId"])
    if not args.wait:
        if args.json:
            print_json(launched)
        else:
            print(f"started run {run_id} (version {launched['workflowVersion']})")
        return 0
    if not args.json:
        print(f"started run {run_id} (version {launched['workflowVersion']}); waiting…", flush=True)
    deadline = time.monotonic() + args.timeout
    while True:
        run = await api.get(f"{RUNS}/{run_id}")
        if run["status"] in TERMINAL or time.monotonic() >= deadline:
            break
        await asyncio.sleep(args.interval)
    if args.json:
        print_json(run)
    else:
        took = duration(elapsed_ms(run.get("started_at"), run.get("completed_at")))
        line = f"run {run_id} {run['status']}"
        if run["status"] in TERMINAL:
            line += f" after {took}"
        if run.get("error_json"):
            line += f"  {_error_text(run['error_json'])}"
        print(line)
    if run["status"] not in TERMINAL:
        print(f"stepwise: run {run_id} is still {run['status']} after {args.timeout:g} s",
              file=sys.stderr)  # fmt: skip
        return 2
    return 0 if run["status"] == "SUCCEEDED" else 1


# --- list -----------------------------------------------------------------------------------


async def runs_list(args: argparse.Namespace, api: ApiClient) -> int:
    params: list[tuple[str, str]] = [("limit", str(args.limit))]
    params += [("status", s) for s in args.status or []]
    params += [("waitingOn", w) for w in args.waiting_on or []]
    if args.workflow:
        params.append(("workflowId", await resolve_workflow(api, args.workflow)))
    if args.cursor:
        params.append(("cursor", args.cursor))
    page = await api.get(RUNS, params)
    if args.json:
        print_json(page)
        return 0
    runs = page["runs"]
    if not runs:
        print("no runs")
        return 0
    print(
        table(
            ["RUN ID", "WORKFLOW", "VER", "STATUS", "WAITING ON", "STARTED (UTC)", "DURATION"],
            [
                [
                    r["run_id"],
                    r.get("workflow_name") or r.get("workflow_id"),
                    r.get("workflow_version"),
                    r["status"] + (" ⚠" if r.get("warnings") else ""),
                    waiting_text(r.get("waiting_on"), 40),
                    short_time(r.get("started_at")),
                    duration(elapsed_ms(r.get("started_at"), r.get("completed_at")))
                    + ("" if r["status"] in TERMINAL else " …"),
                ]
                for r in runs
            ],
        )
    )
    if any(r.get("warnings") for r in runs):
        print(
            "\n⚠ = the run has a warning (e.g. its workflow task keeps failing): stepwise runs show"
        )
    if page.get("nextCursor"):
        print(f"\nmore runs: --cursor {page['nextCursor']}")
    return 0


# --- show -----------------------------------------------------------------------------------


async def runs_show(args: argparse.Namespace, api: ApiClient) -> int:
    run, parts = await asyncio.gather(
        api.get(f"{RUNS}/{args.run_id}"), api.get(f"{RUNS}/{args.run_id}/steps")
    )
    if args.json:
        print_json({"run": run, **parts})
        return 0
    print(render_run(run, parts))
    return 0


def render_run(run: dict[str, Any], parts: dict[str, Any]) -> str:
    lines = [f"run {run['run_id']}  {run['status']}"]
    workflow = run.get("workflow_name") or "-"
    lines.append(
        f"  workflow   {workflow} ({run.get('workflow_id')}) v{run.get('workflow_version')}"
    )
    took = duration(elapsed_ms(run.get("started_at"), run.get("completed_at")))
    lines.append(f"  started    {short_time(run.get('started_at'))} UTC")
    if run.get("completed_at"):
        lines.append(f"  completed  {short_time(run.get('completed_at'))} UTC ({took})")
    else:
        lines.append(
            f"  running    for {took}"
            + (f", at {run['node_path']}" if run.get("node_path") else "")
        )
    if run.get("waiting_on"):
        lines.append(f"  waiting on {waiting_text(run['waiting_on'])}")
    lines.append(f"  trigger    {trigger_text(run)}")
    if run.get("parent_run_id"):
        lines.append(f"  parent     {run['parent_run_id']}")
    if run.get("error_json"):
        lines.append(f"  error      {_error_text(run['error_json'])}")
    steps = parts.get("steps") or []
    lines.append("")
    lines.append(f"steps ({len(steps)})")
    if steps:
        lines.append(
            _indent(
                table(
                    ["PATH", "ID", "TYPE", "STATUS", "TRY", "DURATION", "ERROR"],
                    [
                        [
                            s["step_path"],
                            s.get("definition_step_id"),
                            s.get("step_type"),
                            s["status"],
                            s.get("attempt"),
                            duration(s.get("duration_ms")),
                            _error_text(s.get("error_json"), 60),
                        ]
                        for s in steps
                    ],
                )
            )
        )
    waits = parts.get("waits") or []
    if waits:
        lines.append("")
        lines.append(f"waits ({len(waits)})")
        lines.append(
            _indent(
                table(
                    ["PATH", "TYPE", "EVENT", "KEY", "STATUS", "TIMEOUT (UTC)"],
                    [
                        [
                            w["step_path"],
                            w["wait_type"],
                            w.get("event_name"),
                            w.get("key"),
                            w["status"],
                            short_time(w.get("timeout_at")) if w.get("timeout_at") else None,
                        ]
                        for w in waits
                    ],
                )
            )
        )
    if parts.get("quotaPause"):
        lines.append("")
        lines.append(f"paused by the step quota: {json.dumps(parts['quotaPause'], default=str)}")
    warnings = run.get("warnings") or []
    if warnings:
        lines.append("")
        lines += [warning_line(w) for w in warnings]
    return "\n".join(lines)


def warning_line(warning: dict[str, Any]) -> str:
    """`⚠ CODE: message`, and since when for a warning that says (RUN_WORKFLOW_TASK_FAILING)."""
    line = f"⚠ {warning.get('code')}: {warning.get('message')}"
    if warning.get("since"):
        line += f" (since {short_time(warning['since'])} UTC)"
    return line


def waiting_text(waiting: Any, limit: int = 200) -> str | None:
    """What an open run waits on, in words: `event order.paid key=order-7`,
    `timer until 2024-05-01 12:00:00 UTC`, `human task "Approve"`, `step quota`."""
    if not isinstance(waiting, dict):
        return None
    kind = waiting.get("type")
    if kind == "event":
        text = f"event {waiting.get('event_name') or '?'}"
        if waiting.get("key"):
            text += f" key={waiting['key']}"
    elif kind == "time":
        text = f"timer until {short_time(waiting.get('until'))} UTC"
    elif kind == "human":
        title = waiting.get("task_title")
        text = f'human task "{title}"' if title else f"human task {waiting.get('key') or ''}"
    elif kind == "quota":
        text = "step quota"
    else:
        text = str(kind)
    if waiting.get("until") and kind in ("event", "human"):
        text += f" (timeout {short_time(waiting['until'])} UTC)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def trigger_text(run: dict[str, Any]) -> str:
    """How the run started: an event (with its id), a replay or a child of another run, a
    schedule, or an API launch (with the key's name)."""
    meta = _meta(run)
    if run.get("trigger_type") == "event":
        name = run.get("event_type") or meta.get("eventName") or ""
        return f"event {name} {meta.get('eventId') or ''}".rstrip()
    if run.get("trigger_type"):
        return str(run["trigger_type"])
    if meta.get("replayOfRunId"):
        return f"replay of {meta['replayOfRunId']}"
    if run.get("parent_run_id"):
        return f"child of {run['parent_run_id']}"
    launched_by = meta.get("launchedBy")
    if isinstance(launched_by, dict):
        name = launched_by.get("keyName") or launched_by.get("keyId")
        return f"api (key {name})"
    return "api"


def _meta(run: dict[str, Any]) -> dict[str, Any]:
    meta = run.get("trigger_metadata_json")
    return meta if isinstance(meta, dict) else {}


def _error_text(error: Any, limit: int = 200) -> str | None:
    if not error:
        return None
    if isinstance(error, dict):
        category = error.get("category") or error.get("type")
        message = error.get("message") or json.dumps(error, default=str)
        text = f"{category}: {message}" if category else str(message)
    else:
        text = str(error)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" for line in text.splitlines())


# --- tail -----------------------------------------------------------------------------------


class Tail:
    """What has been printed already, so each transition is printed once."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.steps: dict[str, str] = {}
        self.waits: dict[str, str] = {}
        self.logs: set[str] = set()
        self.log_cursor: str | None = None
        self.status: str | None = None
        self.warnings: set[str] = set()
        self.quota_paused = False

    def emit(self, kind: str, at: Any, text: str, row: dict[str, Any]) -> None:
        if self.as_json:
            print(json.dumps({"type": kind, **row}, default=str), flush=True)
        else:
            print(f"{clock(at)}  {text}", flush=True)

    def run(self, run: dict[str, Any]) -> None:
        if run["status"] != self.status:
            self.status = run["status"]
            at = run.get("completed_at") or run.get("updated_at") or run.get("started_at")
            name = run.get("workflow_name") or run.get("workflow_id")
            text = f"run {run['status']}  ({name} v{run.get('workflow_version')})"
            if run["status"] in TERMINAL:
                took = duration(elapsed_ms(run.get("started_at"), run.get("completed_at")))
                text = f"run {run['status']} after {took}"
                if run.get("error_json"):
                    text += f"  {_error_text(run['error_json'])}"
            self.emit("run", at, text, run)
        for warning in run.get("warnings") or []:
            message = warning_line(warning)
            if message not in self.warnings:
                self.warnings.add(message)
                self.emit("warning", None, message, warning)

    def update(self, parts: dict[str, Any], logs: list[dict[str, Any]]) -> None:
        """Print what is new in the steps, waits and logs, in time order."""
        events = [*self._step_events(parts), *self._wait_events(parts), *self._log_events(logs)]
        for _when, kind, at, text, row in sorted(events, key=lambda e: e[0]):
            self.emit(kind, at, text, row)
        paused = bool(parts.get("quotaPause"))
        if paused != self.quota_paused:
            self.quota_paused = paused
            text = "paused by the step quota" if paused else "quota pause over"
            self.emit("quota", None, text, {"quotaPause": parts.get("quotaPause")})

    def _step_events(self, parts: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        for step in parts.get("steps") or []:
            if self.steps.get(step["step_id"]) == step["status"]:
                continue
            self.steps[step["step_id"]] = step["status"]
            done = step["status"] != "STARTED"
            at = step.get("completed_at") if done else step.get("started_at")
            label = (
                f"{step['step_path']} ({step.get('definition_step_id')}, {step.get('step_type')})"
            )
            text = f"{step['status']:<9} {label}"
            if done and step.get("duration_ms") is not None:
                text += f"  {duration(step['duration_ms'])}"
            if step.get("attempt", 1) > 1:
                text += f"  attempt {step['attempt']}"
            if step.get("error_json"):
                text += f"  {_error_text(step['error_json'], 120)}"
            events.append((_when(at), "step", at, text, step))
        return events

    def _wait_events(self, parts: dict[str, Any]) -> list[Event]:
        events: list[Event] = []
        for wait in parts.get("waits") or []:
            if self.waits.get(wait["wait_id"]) == wait["status"]:
                continue
            self.waits[wait["wait_id"]] = wait["status"]
            what = wait["wait_type"]
            if wait.get("event_name"):
                what += f" {wait['event_name']}"
            if wait.get("key"):
                what += f" key={wait['key']}"
            at = wait.get("resolved_at") or wait.get("created_at")
            text = f"{wait['status']:<9} {wait['step_path']} wait {what}"
            events.append((_when(at), "wait", at, text, wait))
        return events

    def _log_events(self, lines: list[dict[str, Any]]) -> list[Event]:
        events: list[Event] = []
        for line in lines:
            if line["log_id"] in self.logs:
                continue
            self.logs.add(line["log_id"])
            where = f" {line['step_path']}" if line.get("step_path") else ""
            at = line.get("created_at")
            text = f"{line['level']:<9} {line['message']}{where}"
            events.append((_when(at), "log", at, text, line))
        return events


# (sort key, kind, timestamp, text, row)
Event = tuple[datetime, str, Any, str, dict[str, Any]]


def _when(at: Any) -> datetime:
    return parse_time(at) or datetime.max.replace(tzinfo=UTC)


async def _new_logs(api: ApiClient, run_id: str, state: Tail) -> list[dict[str, Any]]:
    """Log lines from the last full page on (the API's cursor marks only full pages)."""
    lines: list[dict[str, Any]] = []
    while True:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if state.log_cursor:
            params["cursor"] = state.log_cursor
        page = await api.get(f"{RUNS}/{run_id}/logs", params)
        lines += page["logs"]
        if not page.get("nextCursor"):
            return lines
        state.log_cursor = page["nextCursor"]


async def runs_tail(args: argparse.Namespace, api: ApiClient) -> int:
    state = Tail(args.json)
    deadline = time.monotonic() + args.timeout if args.timeout else None
    while True:
        run = await api.get(f"{RUNS}/{args.run_id}")
        parts, logs = await asyncio.gather(
            api.get(f"{RUNS}/{args.run_id}/steps"), _new_logs(api, args.run_id, state)
        )
        # the run's own line first, except the terminal one, which closes the view
        terminal = run["status"] in TERMINAL
        if not terminal:
            state.run(run)
        state.update(parts, logs)
        if terminal:
            state.run(run)
        if terminal:
            return 0 if run["status"] == "SUCCEEDED" else 1
        if deadline is not None and time.monotonic() >= deadline:
            print(
                f"stepwise: run {args.run_id} is still {run['status']} after {args.timeout:g} s",
                file=sys.stderr,
            )
            return 2
        await asyncio.sleep(args.interval)


# --- controls and export --------------------------------------------------------------------


def _reason(value: str) -> str:
    if len(value.strip()) < 3:
        raise argparse.ArgumentTypeError("a reason needs at least 3 characters")
    return value


async def runs_cancel(args: argparse.Namespace, api: ApiClient) -> int:
    answer = await api.post(f"{RUNS}/{args.run_id}/cancel", {"reason": args.reason})
    if args.json:
        print_json({**answer, "runId": args.run_id})
    else:
        print(f"canceled run {args.run_id}")
    return 0


async def runs_replay(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {"reason": args.reason}
    if args.payload is not None:
        if not isinstance(args.payload, dict):
            raise CliError("--payload must be a JSON object")
        body["payload"] = args.payload
    answer = await api.post(f"{RUNS}/{args.run_id}/replay", body)
    if args.json:
        print_json({**answer, "replayOfRunId": args.run_id})
    else:
        source = "the given payload" if args.payload is not None else "the original input"
        print(f"replayed run {args.run_id} as new run {answer['runId']} (with {source})")
    return 0


async def runs_export(args: argparse.Namespace, api: ApiClient) -> int:
    content = await api.raw("GET", f"{RUNS}/{args.run_id}/export")
    if args.output is None or args.output == "-":
        sys.stdout.write(content.decode())
        if not content.endswith(b"\n"):
            sys.stdout.write("\n")
        return 0
    path = Path(args.output)
    try:
        await asyncio.to_thread(path.write_bytes, content)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    if args.json:
        print_json({"runId": args.run_id, "file": str(path), "bytes": len(content)})
    else:
        print(f"exported run {args.run_id} to {path} ({len(content)} bytes)")
    return 0


# --- command line ---------------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    runs = subparsers.add_parser(
        "runs", help="list, inspect, follow, cancel, replay and export runs (over the API)"
    )
    verbs = runs.add_subparsers(dest="runs_command", required=True, metavar="COMMAND")

    start = api_command(
        verbs,
        "start",
        "launch a run (manage key); --wait follows it to its end (exit 0 succeeded, 1 failed/"
        "canceled, 2 timeout)",
        runs_start,
    )
    start.add_argument("workflow", metavar="WORKFLOW", help="the workflow's id or key")
    start.add_argument(
        "--payload", type=json_argument, metavar="JSON|@FILE", help="the run input ({})"
    )
    start.add_argument("--version", type=int, metavar="N", help="a published version (latest)")
    start.add_argument("--idempotency-key", metavar="K", help="the same key starts one run only")
    start.add_argument("--wait", action="store_true", help="wait until the run ends")
    start.add_argument("--timeout", type=float, default=300.0, help="with --wait: S seconds (300)")
    start.add_argument("--interval", type=float, default=0.5, help="seconds between polls (0.5)")

    listing = api_command(verbs, "list", "list runs, newest first", runs_list)
    listing.add_argument("--status", action="append", choices=STATUSES, help="repeatable")
    listing.add_argument(
        "--waiting-on",
        action="append",
        choices=WAIT_TYPES,
        help="open runs waiting on this (repeatable)",
    )
    listing.add_argument("--workflow", metavar="W", help="a workflow id, key or name")
    add_limit_option(listing)
    listing.add_argument("--cursor", help="the next page (printed under a full page)")

    show = api_command(verbs, "show", "a run: status, steps, waits and warnings", runs_show)
    show.add_argument("run_id", type=_run_id, metavar="RUN_ID")

    tail = api_command(
        verbs,
        "tail",
        "follow a run live until it ends (exit 0 succeeded, 1 failed/canceled, 2 timeout)",
        runs_tail,
    )
    tail.add_argument("run_id", type=_run_id, metavar="RUN_ID")
    tail.add_argument("--interval", type=float, default=1.0, help="seconds between polls (1)")
    tail.add_argument("--timeout", type=float, default=None, help="give up after S seconds")

    cancel = api_command(verbs, "cancel", "cancel a run (admin key)", runs_cancel)
    cancel.add_argument("run_id", type=_run_id, metavar="RUN_ID")
    cancel.add_argument("--reason", type=_reason, required=True)

    replay = api_command(
        verbs, "replay", "start a new run of the same version (admin key)", runs_replay
    )
    replay.add_argument("run_id", type=_run_id, metavar="RUN_ID")
    replay.add_argument("--reason", type=_reason, required=True)
    replay.add_argument(
        "--payload",
        type=json_argument,
        metavar="JSON|@FILE",
        help="a new input (default: the original, unredacted input)",
    )

    export = api_command(verbs, "export", "the run's JSON export (redacted)", runs_export)
    export.add_argument("run_id", type=_run_id, metavar="RUN_ID")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
