"""`stepwise events publish NAME`: publish a business event through the API.

Without `--wait` the API answers once the event is in JetStream (`accepted`); with `--wait S`
(≤ 30) it waits for the router and says whether a waiting run was resumed.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from stepwise_cli.api_client import (
    ApiClient,
    CliError,
    add_api_options,
    json_argument,
    print_json,
    run_api_command,
)


def _wait(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number of seconds") from None
    if not 0 < seconds <= 30:
        raise argparse.ArgumentTypeError("--wait must be within (0, 30] seconds")
    return seconds


def _event_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a uuid") from None


async def publish(args: argparse.Namespace, api: ApiClient) -> int:
    if args.payload is not None and not isinstance(args.payload, dict):
        raise CliError("--payload must be a JSON object")
    body: dict[str, Any] = {"eventName": args.name, "payload": args.payload or {}}
    if args.key is not None:
        body["correlationKey"] = args.key
    if args.event_id is not None:
        body["eventId"] = args.event_id
    if args.schema is not None:
        body["payloadSchemaRef"] = args.schema
    params = {"wait": f"{args.wait:g}"} if args.wait else None
    answer = await api.post("/api/workflow/events", body, params)
    if args.json:
        print_json(answer)
    else:
        print(describe(args.name, answer))
    return 1 if answer.get("status") == "error" else 0


def describe(name: str, answer: dict[str, Any]) -> str:
    event = f"event {name} ({answer.get('eventId')})"
    status = answer.get("status")
    lines = []
    if status == "accepted":
        lines.append(f"{event} accepted; the router routes it asynchronously")
    elif status == "resumed":
        signaled = answer.get("signaledRuns") or []
        lines.append(
            f"{event} resumed {len(signaled)} waiting run(s): {', '.join(map(str, signaled))}"
        )
    elif status == "no_wait":
        lines.append(f"{event} routed; no run was waiting for it")
    else:
        lines.append(f"{event}: {status}")
    started = answer.get("startedRuns") or []
    if started:
        lines.append(f"started {len(started)} run(s) by trigger: {', '.join(map(str, started))}")
    if answer.get("warning"):
        lines.append(f"⚠ {answer['warning']}")
    return "\n".join(lines)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    events = subparsers.add_parser("events", help="publish business events (over the API)")
    verbs = events.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    parser = verbs.add_parser(
        "publish",
        help="publish an event (manage key)",
        description="Publish an event to NATS through the API; --wait S waits for routing.",
    )
    add_api_options(parser)
    parser.add_argument("name", metavar="NAME", help="the event name (eventName)")
    parser.add_argument("--key", help="the correlation key")
    parser.add_argument(
        "--payload", type=json_argument, metavar="JSON|@FILE", help="a JSON object ({})"
    )
    parser.add_argument("--wait", type=_wait, metavar="S", help="wait up to S s (≤ 30) for routing")
    parser.add_argument("--event-id", type=_event_id, help="an explicit event id (dedupe key)")
    parser.add_argument("--schema", metavar="REF", help="payloadSchemaRef")
    parser.set_defaults(func=lambda args: run_api_command(args, publish))
