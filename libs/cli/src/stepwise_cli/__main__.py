"""`stepwise`: the command-line entry point; one module per command, each exposing `register`.

A command module's `register(subparsers)` adds its parser and sets `func` (args → exit status)
with `parser.set_defaults(func=...)`. Only the module of the command named on the command line is
imported: the HTTP commands need aiohttp, `admin` needs asyncpg and the Temporal SDK, and loading
every one of them would double the start-up time of each `stepwise` call.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

# command name → the module that registers it, in the order `stepwise --help` lists them
COMMANDS: dict[str, str] = {
    "dev": "stepwise_cli.dev_command",
    "admin": "stepwise_cli.admin_command",
    "runs": "stepwise_cli.runs_command",
    "events": "stepwise_cli.events_command",
    "definitions": "stepwise_cli.definitions_command",
    "schemas": "stepwise_cli.schemas_command",
    "tasks": "stepwise_cli.tasks_command",
    "doctor": "stepwise_cli.doctor_command",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of `command` alone when it names one."""
    parser = argparse.ArgumentParser(prog="stepwise", description="Stepwise command-line tool")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    names = [command] if command in COMMANDS else list(COMMANDS)
    for name in names:
        importlib.import_module(COMMANDS[name]).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(words[0] if words else None).parse_args(words)
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
