"""End-to-end harness: the whole system as separate OS processes, driven through HTTP and NATS.

`stack` (session) is a `stepwise_devkit.stack.Stack` — the same launcher as `make run` — with a fresh
database on the machine's Postgres, its own Temporal dev server and nats-server (so NATS can be
restarted with its JetStream store), and the four services. Tests kill, restart or blip its
components by name: `stack.kill("worker")`, `stack.restart("event-router")`, `stack.restart_nats()`,
`stack.postgres_blip()` (those that wait block; call them through `asyncio.to_thread` while the
test has other work in flight). `api` is an aiohttp session on the API with the admin key of the
stack's tenant (`stack.tenant_id`). A failing test gets the tail of every component's log.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from stepwise_devkit.scratch_database import scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# Environment every e2e service gets on top of the stack's own (short intervals go here as the
# services grow knobs for them): the sweeper's passes every second and launch reconciliation after
# 2 s, the stuck-run warning after 2 s, and JetStream redelivery of an unacked event (a killed
# router's) after 5 s instead of 30 s.
E2E_ENV: dict[str, str] = {
    "STEPWISE_LOG_FORMAT": "json",
    "STEPWISE_SWEEP_EXPIRY_INTERVAL_S": "1",
    "STEPWISE_SWEEP_RECONCILE_INTERVAL_S": "1",
    "STEPWISE_RECONCILE_GRACE_S": "2",
    "STEPWISE_STUCK_RUN_THRESHOLD_S": "2",
    "STEPWISE_ROUTER_ACK_WAIT_S": "5",
}


@pytest.fixture(scope="session")
def e2e_env() -> dict[str, str]:
    """`E2E_ENV`, for modules that start a stack of their own (test_scale_out.py)."""
    return dict(E2E_ENV)


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    return ADMIN_URL


@pytest.fixture(scope="session")
def e2e_database_url() -> Iterator[str]:
    """A fresh, empty database (the stack migrates it), dropped at the end of the session."""
    with scratch_database(ADMIN_URL, "stepwise_e2e") as url:
        yield url


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, e2e_database_url: str) -> Iterator[Stack]:
    home: Path = tmp_path_factory.mktemp("e2e")
    system = Stack(home, database_url=e2e_database_url, extra_env=E2E_ENV, tenant_name="e2e")
    system.start()
    try:
        yield system
    finally:
        system.stop()


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(
        base_url=stack.api_url,
        headers={"Authorization": f"Bearer {stack.api_key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        yield session


@pytest.fixture
async def stack_api(api: aiohttp.ClientSession) -> StackApi:
    """The HTTP API as `StackApi` (publish definitions, launch, wait for a status…)."""
    return StackApi(api)


@pytest.fixture
async def nats_events(stack: Stack) -> AsyncIterator[EventPublisher]:
    """Publishes envelopes to JetStream for the stack's tenant, as a producer does."""
    publisher = await EventPublisher.connect(stack.nats_url, stack.tenant_id)
    try:
        yield publisher
    finally:
        await publisher.close()


@pytest.fixture(scope="session")
async def stack_db(stack: Stack) -> AsyncIterator[asyncpg.Pool]:
    """The stack's database, for checks no API exposes (the ledger, a swept row)."""
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    system = getattr(item, "funcargs", {}).get("stack")
    if report.failed and isinstance(system, Stack):
        report.sections.append(("stack logs", system.logs_tail()))
    return report
