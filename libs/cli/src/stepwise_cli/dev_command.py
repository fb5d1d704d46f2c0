"""`stepwise dev` (= `make run`): the whole system on this machine, with embedded defaults."""

from __future__ import annotations

import argparse
import io
import os
import sys


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dev",
        help="run the whole system locally (Temporal, NATS, Postgres, the four services)",
        description="Start Temporal, NATS, Postgres and the four services; Ctrl-C stops them all.",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stepwise_cli.devstack import run_dev

    # Progress lines carry ✓/✗; a non-UTF-8 terminal gets a replacement character, not a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    return run_dev(os.environ)
