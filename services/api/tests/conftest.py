"""Fixtures of the API tests: the real app in-process (aiohttp test server) against the session's
Postgres, Temporal and NATS; a fresh tenant with a key per role for every test; a real worker
process for the modules that execute runs (`worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from aiohttp.test_utils import TestClient, TestServer
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry
from stepwise_api.app import create_app
from stepwise_api.settings import Settings
from stepwise_cli.admin_operations import create_key, create_tenant
from stepwise_contract import names
from stepwise_contract.enums import Role
from stepwise_contract.names import workflow_id_for
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready
from stepwise_sweeper.jobs.cancel_enforcement import CancelEnforcementConfig, CancelEnforcementJob
from stepwise_sweeper.jobs.task_failures import TaskFailuresConfig, TaskFailuresJob
from stepwise_sweeper.metrics import SweeperMetrics
from stepwise_sweeper.scheduler import ScheduledJob, Scheduler
from temporalio.client import Client


@pytest.fixture(scope="session")
async def events_stream(nats_url: str) -> None:
    """The events stream the API publishes to (the router creates it in production; the config
    mirrors SPEC §8 so a router started later in the session finds it compatible)."""
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        try:
            await js.stream_info(names.EVENTS_STREAM)
        except NotFoundError:
            await js.add_stream(
                StreamConfig(
                    name=names.EVENTS_STREAM,
                    subjects=[names.EVENTS_SUBJECTS],
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    duplicate_window=120.0,
                    max_age=7 * 24 * 3600.0,
                )
            )
    finally:
        await nc.close()


def api_settings(service_env: dict[str, str], **overrides: str) -> Settings:
    # Tests revoke keys, suspend tenants and change redaction, then check the effect at once: they
    # run without the key cache; test_key_cache.py proves the bound the cache keeps.
    return Settings.from_env({**service_env, "STEPWISE_API_AUTH_CACHE_S": "0", **overrides})


@pytest.fixture(scope="session")
def app_factory(service_env: dict[str, str], events_stream: None) -> Callable[..., Any]:
    """Start another API app (own pool and clients) on the same database; closed at teardown."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**overrides: str) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(
            TestServer(create_app(api_settings(service_env, **overrides)))
        )
        await client.start_server()
        clients.append(client)
        return client

    start.clients = clients  # type: ignore[attr-defined]
    return start


ECHO_STEPS = [
    {
        "id": "echo",
        "type": "action.call",
        "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": 1}},
    }
]


def definition(name: str = "wf", **extra: Any) -> dict[str, Any]:
    return {"name": name, "steps": ECHO_STEPS, **extra}


class Api:
    """The test client of one API app, with the builders most tests need."""

    def __init__(self, client: TestClient[Any, Any]) -> None:
        self.client = client
        self.get = client.get
        self.post = client.post
        self.put = client.put
        self.patch = client.patch
        self.request = client.request

    definition = staticmethod(definition)

    async def create_published(
        self, headers: dict[str, str], body: dict[str, Any] | None = None
    ) -> str:
        resp = await self.post(
            "/api/workflow-definitions", json={"definition": body or definition()}, headers=headers
        )
        assert resp.status == 201, await resp.text()
        workflow_id = str((await resp.json())["workflowId"])
        resp = await self.post(
            f"/api/workflow-definitions/{workflow_id}/publish", json={}, headers=headers
        )
        assert resp.status == 200, await resp.text()
        return workflow_id

    async def launch(
        self,
        headers: dict[str, str],
        workflow_id: str,
        payload: dict[str, Any] | None = None,
        expect: int = 201,
        **extra: Any,
    ) -> dict[str, Any]:
        resp = await self.post(
            "/api/workflow-runs",
            json={"workflowId": workflow_id, "payload": payload or {}, **extra},
            headers=headers,
        )
        assert resp.status == expect, await resp.text()
        body: dict[str, Any] = await resp.json()
        return body


@pytest.fixture(scope="session")
async def api(app_factory: Callable[..., Any]) -> AsyncIterator[Api]:
    client = await app_factory(STEPWISE_STUCK_RUN_THRESHOLD_S="60")
    yield Api(client)
    for started in app_factory.clients:  # type: ignore[attr-defined]
        await started.close()


@dataclass
class Tenant:
    id: uuid.UUID
    pool: asyncpg.Pool
    keys: dict[Role, str] = field(default_factory=dict)

    def headers(self, role: Role = Role.ADMIN) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}


async def _terminate_open_runs(pool: asyncpg.Pool, client: Client, tenant_id: uuid.UUID) -> None:
    """Most runs here are launched with no worker polling; terminate what is still open so that
    workers of later tests on the same Temporal server do not inherit them."""
    records = await pool.fetch(
        "SELECT run_id FROM workflow_runs WHERE tenant = $1 AND status IN ('RUNNING', 'WAITING')",
        tenant_id,
    )
    for record in records:
        with contextlib.suppress(Exception):
            await client.get_workflow_handle(workflow_id_for(str(record["run_id"]))).terminate(
                "API test finished"
            )


@pytest.fixture
async def tenant(pool: asyncpg.Pool, temporal_client: Client) -> AsyncIterator[Tenant]:
    tenant_id, admin_key = await create_tenant(pool, f"test-{uuid.uuid4().hex[:8]}")
    out = Tenant(id=tenant_id, pool=pool, keys={Role.ADMIN: admin_key})
    for role in (Role.READ, Role.MANAGE, Role.PUBLISH):
        _, key = await create_key(pool, tenant_id, role, f"test {role.value}")
        out.keys[role] = key
    yield out
    await _terminate_open_runs(pool, temporal_client, tenant_id)


@pytest.fixture
async def other_tenant(pool: asyncpg.Pool, temporal_client: Client) -> AsyncIterator[Tenant]:
    tenant_id, admin_key = await create_tenant(pool, f"other-{uuid.uuid4().hex[:8]}")
    yield Tenant(id=tenant_id, pool=pool, keys={Role.ADMIN: admin_key})
    await _terminate_open_runs(pool, temporal_client, tenant_id)


@dataclass
class Sweeper:
    """The sweeper's task-failure and cancel-enforcement jobs running for one tenant, and the
    registry their metrics go to."""

    registry: CollectorRegistry
    cancel_grace_s: float = 2.0


@pytest.fixture
async def sweeper(
    pool: asyncpg.Pool, temporal_client: Client, tenant: Tenant
) -> AsyncIterator[Sweeper]:
    """The two sweeper jobs on short intervals, in the background, for this tenant only."""
    out = Sweeper(CollectorRegistry())
    scope = (tenant.id,)
    scheduler = Scheduler(
        [
            ScheduledJob(
                job=TaskFailuresJob(pool, temporal_client, TaskFailuresConfig(tenants=scope)),
                interval_s=1.0,
            ),
            ScheduledJob(
                job=CancelEnforcementJob(
                    pool,
                    temporal_client,
                    CancelEnforcementConfig(grace_s=out.cancel_grace_s, tenants=scope),
                ),
                interval_s=0.5,
            ),
        ],
        on_pass=SweeperMetrics(out.registry).record_pass,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(scheduler.run(stop))
    yield out
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture(scope="module")
async def worker(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ManagedProcess]:
    port = free_port()
    log_dir: Path = tmp_path_factory.mktemp("api-worker")
    proc = ManagedProcess(
        name="worker",
        argv=[sys.executable, "-m", "stepwise_worker"],
        log_path=log_dir / "worker.log",
        env={**service_env, "STEPWISE_WORKER_PORT": str(port)},
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 60)
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


@pytest.fixture(scope="session")
def api_with(app_factory: Callable[..., Any]) -> Callable[..., Awaitable[Api]]:
    """Another API app with settings overridden (env names → values)."""

    async def make(**overrides: str) -> Api:
        return Api(await app_factory(**overrides))

    return make
