"""`stepwise dev` (= `make run`): the whole system on this machine, with embedded defaults.

The stack itself is `stepwise_devkit.dev_session`. The devkit is not a dependency of the CLI (it
brings Temporal, NATS and Postgres binaries an operator's install does not need): the workspace
installs it, and without it this command says so.
"""

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
    try:
        from stepwise_devkit.dev_session import run_dev
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "stepwise_devkit":
            raise  # the devkit is there, something it imports is not
        print(
            "stepwise dev: needs the stepwise-devkit package (`make run` in a checkout of the"
            " repository installs it)",
            file=sys.stderr,
        )
        return 2

    # Progress lines carry ✓/✗; a non-UTF-8 terminal gets a replacement character, not a crash.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")
    return run_dev(os.environ)
