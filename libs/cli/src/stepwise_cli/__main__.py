"""`stepwise`: the command-line entry point; one module per command, each exposing `register`.

A command module's `register(subparsers)` adds its parser and sets `func` (args → exit status)
with `parser.set_defaults(func=...)`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from stepwise_cli import (
    admin_command,
    definitions_command,
    dev_command,
    doctor_command,
    events_command,
    runs_command,
    schemas_command,
    tasks_command,
)

COMMANDS = (
    dev_command,
    admin_command,
    runs_command,
    events_command,
    definitions_command,
    schemas_command,
    tasks_command,
    doctor_command,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stepwise", description="Stepwise command-line tool")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except BrokenPipeError:
        # the reader went away (`stepwise runs list | head`): not an error of ours. Point stdout
        # at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it


def run() -> NoReturn:
    """The `stepwise` executable: `main`, then exit without interpreter finalization.

    Commands that talk to Temporal (doctor) may leave an RPC in flight when a check times out;
    the SDK's native threads then call back into Python while it finalizes and the process aborts
    (SIGABRT, "PyGILState_Release") after its output is complete. Everything is flushed first and
    nothing here needs atexit handlers.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # a reader that went away: nothing left to tell it
            stream.flush()
    os._exit(code)


if __name__ == "__main__":
    run()
