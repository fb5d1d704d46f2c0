"""A stack on the embedded Postgres: a late worker, and Postgres restarted (clean, kill -9)."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from stepwise_devkit.child_process import group_gone
from stepwise_devkit.stack import SERVICES, Stack

pytestmark = pytest.mark.e2e


@pytest.fixture
def home() -> Iterator[Path]:
    # As root the embedded Postgres runs as another user, who must traverse to its data directory;
    # pytest's temp root is private (0700).
    path = Path(tempfile.mkdtemp(prefix="stepwise-e2e-pg-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


async def _wait_all_ready(stack: Stack, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    pending = [spec.name for spec in SERVICES]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as http:
        while pending:
            still = []
            for name in pending:
                try:
                    async with http.get(f"{stack.service_url(name)}/readyz") as resp:
                        if resp.status != 200:
                            still.append(name)
                except aiohttp.ClientError:
                    still.append(name)
            pending = still
            if pending and time.monotonic() > deadline:
                pytest.fail(f"not ready {timeout_s}s later: {pending}\n{stack.logs_tail()}")
            if pending:
                await asyncio.sleep(0.2)


async def _count_tenants(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM tenants"))
    finally:
        await conn.close()


async def test_restart_embedded_postgres_clean_and_hard(home: Path) -> None:
    stack = Stack(home, with_worker=False)
    await asyncio.to_thread(stack.start)
    try:
        # Started without a worker (the stuck-run scenario), then the worker joins.
        assert "worker" not in stack.components()
        worker = await asyncio.to_thread(stack.start_service, "worker")
        assert worker.alive() and "worker" in stack.components()
        postgres = stack.service("postgres")
        assert stack.database_url.endswith("/stepwise")
        assert await _count_tenants(stack.database_url) == 1

        first_pid = postgres.pid
        await asyncio.to_thread(stack.restart_postgres)
        assert postgres.pid != first_pid
        await _wait_all_ready(stack)

        second_pid = postgres.pid
        assert second_pid is not None
        await asyncio.to_thread(stack.restart_postgres, hard=True)
        assert group_gone(second_pid)  # kill -9 took the backends with the postmaster
        await _wait_all_ready(stack)
        # Crash recovery kept the committed data.
        assert await _count_tenants(stack.database_url) == 1
        assert stack.dead() == []
    finally:
        await asyncio.to_thread(stack.stop)
    assert postgres.returncode is not None and group_gone(postgres.pid or 0)
