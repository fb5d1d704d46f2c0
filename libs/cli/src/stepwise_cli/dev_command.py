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
    parser.add_argument(
        "--replicas",
        type=_replicas,
        default={},
        metavar="SERVICE=N,...",
        help="processes per service, e.g. api=2,worker=3,event-router=2,sweeper=2 (default 1 each)",
    )
    parser.add_argument(
        "--nats-nodes",
        type=int,
        choices=(1, 3, 5),
        default=1,
        help="run NATS as a JetStream cluster of this many nodes, streams replicated on each"
        " (default 1; ignored when NATS_URL is set)",
    )
    parser.set_defaults(func=run)


def _replicas(text: str) -> dict[str, int]:
    from stepwise_devkit.replicas import ReplicasError, parse_replicas

    try:
        return parse_replicas(text)
    except ReplicasError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    return run_dev(os.environ, replicas=args.replicas, nats_nodes=args.nats_nodes)
