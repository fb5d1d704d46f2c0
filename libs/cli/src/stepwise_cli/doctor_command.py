"""`stepwise doctor`: is every part of Stepwise there and working? A ✓/✗ checklist with fixes.

Where things are: flags, else the usual variables (`DATABASE_URL`, `TEMPORAL_ADDRESS`,
`TEMPORAL_NAMESPACE`, `NATS_URL`, `STEPWISE_API_URL`, `STEPWISE_<SERVICE>_URL`), else the files
`make run` leaves in `$STEPWISE_HOME` (`dev.env`, and `stack.json` for the services' URLs), else
the defaults. Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
from stepwise_contract.platform.settings import CommonSettings, SettingsError

if TYPE_CHECKING:
    # imported when the command runs: Temporal's SDK is slow to import for every other command
    from stepwise_cli.doctor_checks import Check, Targets

MARKS: Final = {"ok": "✓", "warn": "!", "fail": "✗", "skip": "-"}
# service name → (flag dest, environment variable)
SERVICE_URLS: Final = {
    "api": ("api_url", "STEPWISE_API_URL"),
    "worker": ("worker_url", "STEPWISE_WORKER_URL"),
    "event-router": ("router_url", "STEPWISE_ROUTER_URL"),
    "sweeper": ("sweeper_url", "STEPWISE_SWEEPER_URL"),
}


def _home_files(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(dev.env values, service → URL from stack.json) of `$STEPWISE_HOME`, when present."""
    from stepwise_cli.stepwise_home import DEV_ENV_FILE, STATE_FILE, parse_dev_env

    home = Path(environ.get("STEPWISE_HOME") or ".stepwise")
    try:
        dev = parse_dev_env((home / DEV_ENV_FILE).read_text(encoding="utf-8"))
    except OSError:
        dev = {}
    urls: dict[str, str] = {}
    try:
        state = json.loads((home / STATE_FILE).read_text(encoding="utf-8"))
        for name, info in (state.get("processes") or {}).items():
            if name in SERVICE_URLS and isinstance(info, dict) and info.get("url"):
                urls[name] = str(info["url"])
    except (OSError, ValueError, AttributeError):
        pass
    return dev, urls


def targets_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Targets:
    from stepwise_cli.doctor_checks import Targets

    dev, stack_urls = _home_files(environ)
    # the environment wins over dev.env, dev.env over the built-in defaults
    merged = {**dev, **environ}
    for flag, name in (
        ("database_url", "DATABASE_URL"),
        ("temporal_address", "TEMPORAL_ADDRESS"),
        ("namespace", "TEMPORAL_NAMESPACE"),
        ("nats_url", "NATS_URL"),
    ):
        if getattr(args, flag):
            merged[name] = getattr(args, flag)
    common = CommonSettings.from_env(merged)
    services: dict[str, str] = {}
    for service, (flag, variable) in SERVICE_URLS.items():
        url = getattr(args, flag) or merged.get(variable) or stack_urls.get(service)
        if url:
            services[service] = url
    return Targets(
        database_url=common.database_url,
        temporal_address=common.temporal_address,
        temporal_namespace=common.temporal_namespace,
        nats_url=common.nats_url,
        nats=common.nats,
        temporal_access=common.temporal_access,
        services=services,
        timeout_s=args.timeout,
    )


def render(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for check in checks:
        lines.append(f"{MARKS[check.status]} {check.name.ljust(width)}  {check.detail}")
        if check.fix and check.status in ("fail", "warn"):
            lines.append(f"  {' ' * width}  → {check.fix}")
    failed = [c.name for c in checks if c.status == "fail"]
    warned = [c.name for c in checks if c.status == "warn"]
    lines.append("")
    if failed:
        lines.append(f"✗ {len(failed)} problem(s): {', '.join(failed)}")
    elif warned:
        lines.append(f"! everything works; look at: {', '.join(warned)}")
    else:
        lines.append("✓ all checks passed")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from stepwise_cli.doctor_checks import Doctor

    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    try:
        targets = targets_from(args, os.environ)
    except SettingsError as exc:
        print(f"stepwise doctor: configuration error: {exc}", file=sys.stderr)
        return 2
    checks = asyncio.run(Doctor(targets).run())
    ok = not any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": msgspec.to_builtins(checks)}, indent=2))
    else:
        print(render(checks))
    return 0 if ok else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check Postgres, migrations, Temporal, task-queue pollers, NATS and the services",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    parser.add_argument("--database-url", help="default $DATABASE_URL")
    parser.add_argument("--temporal-address", help="default $TEMPORAL_ADDRESS")
    parser.add_argument("--namespace", help="Temporal namespace (default $TEMPORAL_NAMESPACE)")
    parser.add_argument("--nats-url", help="default $NATS_URL")
    for service, (flag, variable) in SERVICE_URLS.items():
        parser.add_argument(
            f"--{flag.replace('_', '-')}",
            dest=flag,
            help=f"the {service}'s base URL, to check its /readyz (default ${variable})",
        )
    parser.add_argument(
        "--timeout", type=float, default=5.0, help="seconds each check may take (5)"
    )
    parser.set_defaults(func=run)
