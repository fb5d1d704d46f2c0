"""The fault helpers the e2e and fault tests rely on: kill -9, restart, NATS restart, Postgres blip.

Each test leaves the session stack as it found it: every service ready.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
from stepwise_devkit.child_process import process_gone
from stepwise_devkit.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e


async def _ready(stack: Stack, name: str) -> bool:
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http,
            http.get(f"{stack.service_url(name)}/readyz") as resp,
        ):
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _wait_all_ready(stack: Stack, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = [spec.name for spec in SERVICES]
    while pending:
        pending = [name for name in pending if not await _ready(stack, name)]
        if pending and time.monotonic() > deadline:
            pytest.fail(f"not ready {timeout_s}s later: {pending}")
        if pending:
            await asyncio.sleep(0.2)


async def test_kill_and_restart_a_service(stack: Stack) -> None:
    router = stack.service("event-router")
    old_pid = router.pid
    assert old_pid is not None
    stack.kill("event-router")
    assert process_gone(old_pid)
    assert router.returncode == -9
    assert not await _ready(stack, "event-router")
    assert stack.dead() == []  # killed on purpose: not reported as an unexpected death

    await asyncio.to_thread(stack.restart, "event-router")
    assert router.pid != old_pid and router.alive()
    await _wait_all_ready(stack)


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


async def test_restart_with_env_override(stack: Stack) -> None:
    sweeper = stack.service("sweeper")
    await asyncio.to_thread(stack.restart, "sweeper", env={"STEPWISE_LOG_LEVEL": "DEBUG"})
    assert sweeper.pid is not None
    env = _environ(sweeper.pid)
    assert env["STEPWISE_LOG_LEVEL"] == "DEBUG"
    assert env["DATABASE_URL"] == stack.database_url
    assert env["STEPWISE_SWEEPER_PORT"] == stack.service_url("sweeper").rpartition(":")[2]
    with pytest.raises(RuntimeError, match="already running"):
        stack.start_service("sweeper")
    await asyncio.to_thread(stack.restart, "sweeper", env={"STEPWISE_LOG_LEVEL": ""})
    await _wait_all_ready(stack)


async def test_restart_nats_keeps_services_ready(stack: Stack) -> None:
    nats = stack.service("nats")
    old_pid = nats.pid
    await asyncio.to_thread(stack.restart_nats)
    assert nats.pid != old_pid and nats.alive()
    # The services' NATS clients reconnect to the same URL on their own.
    await _wait_all_ready(stack)


async def test_postgres_blip_is_survived(stack: Stack) -> None:
    terminated = await asyncio.to_thread(stack.postgres_blip)
    assert terminated >= 4  # each service holds at least one pooled connection
    await _wait_all_ready(stack)


def test_restart_postgres_is_refused_for_the_machine_server(stack: Stack) -> None:
    with pytest.raises(RuntimeError, match="postgres_blip"):
        stack.restart_postgres()
