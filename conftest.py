"""Session fixtures shared by every test in the workspace: real Postgres, NATS JetStream, Temporal.

Each test run owns its infrastructure: a fresh database on the machine's Postgres (or
`STEPWISE_TEST_PG_ADMIN_URL`), a nats-server with its own JetStream store and a Temporal dev server,
both started from wheels on free ports. Tests own their data by using a fresh tenant.

A test is marked with what it needs (`postgres`, `temporal`, `nats`) from the fixtures it uses,
directly or through other fixtures, so `pytest -m "not postgres and not temporal and not nats and
not browser"` runs without any server. Tests that reach a server another way mark themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import ClassVar, Final

import asyncpg
import pytest
from stepwise_contract.names import workflow_id_for
from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.migrate import migrate
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.infra_servers import nats_server, temporal_dev_server_headless
from stepwise_devkit.scratch_database import scratch_database
from temporalio import workflow
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)

# fixture → the servers a test using it needs
FIXTURE_NEEDS: Final = {
    "database_url": ("postgres",),
    "e2e_database_url": ("postgres",),
    "temporal_address": ("temporal",),
    "nats_url": ("nats",),
}
# an end-to-end test starts the whole system
MARKER_NEEDS: Final = {"e2e": ("postgres", "temporal", "nats")}


def needs_of(fixturenames: list[str], markers: set[str]) -> set[str]:
    needs = {need for name in fixturenames for need in FIXTURE_NEEDS.get(name, ())}
    needs.update(need for marker in markers for need in MARKER_NEEDS.get(marker, ()))
    return needs - markers


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        markers = {marker.name for marker in item.iter_markers()}
        for need in sorted(needs_of(list(getattr(item, "fixturenames", ())), markers)):
            item.add_marker(need)


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


@workflow.defn(name="StepwiseTestFailingTask")
class FailingTaskWorkflow:
    """A workflow whose workflow task raises while its id is in `broken` (with the message to
    raise; a plain exception fails the workflow task, not the workflow: Temporal retries it
    forever); once fixed it waits."""

    broken: ClassVar[dict[str, str]] = {}

    @workflow.run
    async def run(self) -> None:
        message = FailingTaskWorkflow.broken.get(workflow.info().workflow_id)
        if message is not None:
            raise RuntimeError(message)
        await workflow.wait_condition(lambda: False)


class FailingTasks:
    """Starts `FailingTaskWorkflow` under a run's workflow id, on a worker of this test's own
    task queue."""

    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue
        self.started: list[str] = []

    async def start(self, run_id: uuid.UUID, message: str = "workflow code bug on purpose") -> str:
        """Start the run's failing workflow; returns its Temporal run id. A short task timeout
        makes Temporal retry the task every second instead of every 10 s."""
        workflow_id = workflow_id_for(str(run_id))
        FailingTaskWorkflow.broken[workflow_id] = message
        handle = await self.client.start_workflow(
            "StepwiseTestFailingTask",
            id=workflow_id,
            task_queue=self.task_queue,
            task_timeout=timedelta(seconds=1),
        )
        self.started.append(workflow_id)
        assert handle.result_run_id is not None
        return handle.result_run_id

    def fix(self, run_id: uuid.UUID) -> None:
        FailingTaskWorkflow.broken.pop(workflow_id_for(str(run_id)), None)


@contextlib.asynccontextmanager
async def failing_tasks_on(client: Client) -> AsyncIterator[FailingTasks]:
    """`FailingTasks` with a worker in `client`'s namespace; what it started is terminated."""
    tasks = FailingTasks(client, f"failing-task-{uuid.uuid4()}")
    async with Worker(
        client,
        task_queue=tasks.task_queue,
        workflows=[FailingTaskWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield tasks
        for workflow_id in tasks.started:
            FailingTaskWorkflow.broken.pop(workflow_id, None)
            with contextlib.suppress(RPCError):  # already closed
                await client.get_workflow_handle(workflow_id).terminate("test done")


@pytest.fixture
def failing_tasks_in() -> Callable[[Client], contextlib.AbstractAsyncContextManager[FailingTasks]]:
    """Failing workflows in another namespace: `async with failing_tasks_in(client) as tasks`."""
    return failing_tasks_on


@pytest.fixture
async def failing_tasks(temporal_client: Client) -> AsyncIterator[FailingTasks]:
    async with failing_tasks_on(temporal_client) as tasks:
        yield tasks
