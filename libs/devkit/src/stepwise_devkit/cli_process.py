"""Test support: the `stepwise` CLI as a real process against a `Stack` — the stack's API URL and
admin key in the environment, and a `STEPWISE_HOME` without a dev.env (flags and environment only).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from typing import Any

from stepwise_devkit.stack import Stack


def cli_env(stack: Stack, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STEPWISE_", "OTEL_"))}
    return {
        **env,
        "STEPWISE_API_URL": stack.api_url,
        "STEPWISE_API_KEY": stack.api_key,
        "STEPWISE_HOME": str(stack.home / "cli-home"),
        **extra,
    }


async def cli(stack: Stack, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stepwise_cli", *argv],
        env=cli_env(stack, **env),
        capture_output=True,
        text=True,
        timeout=90,
    )


async def cli_json(stack: Stack, *argv: str) -> Any:
    proc = await cli(stack, *argv, "--json")
    assert proc.returncode == 0, f"{argv}: {proc.stderr}{proc.stdout}"
    return json.loads(proc.stdout)
