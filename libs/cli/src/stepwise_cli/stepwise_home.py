"""What `make run` leaves in `$STEPWISE_HOME` (default `.stepwise`) for the CLI to read.

`dev.env`: the `KEY=value` lines written once the stack is ready, read when the environment does
not name the API, the database or the secret key. `stack.json`: the running stack's processes
(URLs, pids, log files), where `stepwise doctor` finds the services.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Final

DEV_ENV_FILE: Final = "dev.env"
STATE_FILE: Final = "stack.json"
DEV_ENV_KEYS: Final = (
    "STEPWISE_API_URL",
    "STEPWISE_API_KEY",
    "STEPWISE_TENANT_ID",
    "NATS_URL",
    "DATABASE_URL",
    "TEMPORAL_ADDRESS",
    "TEMPORAL_UI_URL",
    "STEPWISE_SECRET_KEY",
)


def format_dev_env(values: Mapping[str, str]) -> str:
    """`KEY=value` lines a shell can source (`set -a; . dev.env`); quoted only where needed."""
    return "".join(f"{key}={shlex.quote(values[key])}\n" for key in DEV_ENV_KEYS)


def parse_dev_env(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, raw = line.partition("=")
        if sep and key.strip() and not key.startswith("#"):
            parts = shlex.split(raw)
            values[key.strip()] = parts[0] if parts else ""
    return values


def read_dev_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The values of `$STEPWISE_HOME/dev.env` (default `.stepwise`), empty when there is none."""
    path = Path(environ.get("STEPWISE_HOME") or ".stepwise") / DEV_ENV_FILE
    try:
        return parse_dev_env(path.read_text(encoding="utf-8"))
    except OSError:
        return {}
