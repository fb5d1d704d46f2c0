"""Session fixtures shared by every test in the workspace: real Postgres, NATS JetStream, Temporal.

Each test run owns its infrastructure: a fresh database on the machine's Postgres (or
`STEPWISE_TEST_PG_ADMIN_URL`), a nats-server with its own JetStream store and a Temporal dev server,
both started from wheels on free ports. Tests own their data by using a fresh tenant.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from stepwise_cli.infra import nats_server, temporal_dev_server_headless
from stepwise_cli.scratch import scratch_database
from stepwise_contract.claim_store import PostgresClaimStore
from stepwise_contract.db import create_pool
from stepwise_contract.migrate import migrate
from stepwise_contract.temporal import connect_temporal
from temporalio.client import Client

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="session")
def temporal_address(stack_home: Path) -> Iterator[str]:
    proc, address = temporal_dev_server_headless(stack_home)
    proc.start().wait_ready(60)
    try:
        yield address
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def nats_url(stack_home: Path) -> Iterator[str]:
    proc, url = nats_server(stack_home)
    proc.start().wait_ready(30)
    try:
        yield url
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with scratch_database(ADMIN_URL, "stepwise_test") as url:
        asyncio.run(migrate(url))
        yield url


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, max_size=20)
    try:
        yield p
    finally:
        await p.close()


@pytest.fixture(scope="session")
async def temporal_client(temporal_address: str, pool: asyncpg.Pool) -> Client:
    """With the claim-check codec over the session database (payloads over 256 KiB)."""
    return await connect_temporal(temporal_address, "default", claims=PostgresClaimStore(pool))


@pytest.fixture
def tenant_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="session")
def service_env(database_url: str, temporal_address: str, nats_url: str) -> dict[str, str]:
    """Environment for a service started as a real process against this run's infrastructure."""
    return {
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": "default",
        "NATS_URL": nats_url,
        "STEPWISE_LOG_FORMAT": "json",
        "STEPWISE_SECRET_KEY": "test-secret-key",
        "STEPWISE_BIND_HOST": "127.0.0.1",
    }
