"""`stepwise doctor` against the real Postgres, Temporal dev server and nats-server fixtures.

A fresh Temporal namespace per test stands for "this deployment": nothing else polls its task
queue, so "no worker is polling" and "a worker polls" are both deterministic.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import asyncpg
import nats
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from google.protobuf.duration_pb2 import Duration
from stepwise_cli.doctor_checks import Check, Doctor, Targets
from stepwise_cli.doctor_command import render
from stepwise_contract.names import TASK_QUEUE
from stepwise_contract.platform.migrate import load_migrations
from stepwise_contract.platform.ops import add_ops_routes
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.scratch_database import scratch_database
from stepwise_router.settings import Settings as RouterSettings
from stepwise_router.stream import ensure_topology
from temporalio import activity, workflow
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
CLOSED = "127.0.0.1:1"  # nothing listens on port 1


@activity.defn(name="ops_doctor_noop")
async def noop() -> None:
    return None


@workflow.defn(name="OpsDoctorWorkflow")
class NoopWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(seconds=5))


@pytest.fixture
async def namespace(temporal_client: Client) -> str:
    name = f"ops-doctor-{uuid.uuid4().hex[:10]}"
    request = RegisterNamespaceRequest(
        namespace=name, workflow_execution_retention_period=Duration(seconds=86400)
    )
    # A loaded dev server has answered CANCELLED to this call (CI, full suite): registration is
    # idempotent by name, so retry, and count "already exists" from an earlier try as done.
    for attempt in range(5):
        try:
            await temporal_client.workflow_service.register_namespace(
                request, timeout=timedelta(seconds=15)
            )
            break
        except RPCError as err:
            if err.status == RPCStatusCode.ALREADY_EXISTS:
                break
            if attempt == 4:
                raise
            await asyncio.sleep(0.5 * (attempt + 1))
    return name


@pytest.fixture(scope="module")
async def topology(nats_url: str) -> None:
    """The streams and consumer as the router creates them (its own defaults)."""
    defaults = RouterSettings.from_env({})
    nc = await nats.connect(nats_url)
    try:
        await ensure_topology(
            nc.jetstream(), max_deliver=defaults.max_deliver, ack_wait_s=defaults.ack_wait_s
        )
    finally:
        await nc.close()


def _targets(
    database_url: str, temporal_address: str, namespace: str, nats_url: str, **extra: object
) -> Targets:
    return Targets(
        database_url=database_url,
        temporal_address=temporal_address,
        temporal_namespace=namespace,
        nats_url=nats_url,
        timeout_s=5.0,
        **extra,  # type: ignore[arg-type]  # Targets' keyword fields
    )


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


async def test_no_worker_polling_is_reported_with_the_fix(
    database_url: str, temporal_address: str, nats_url: str, namespace: str, topology: None
) -> None:
    checks = _by_name(
        await Doctor(_targets(database_url, temporal_address, namespace, nats_url)).run()
    )
    for name in ("postgres", "migrations", "temporal", "nats", "jetstream", "workflow tasks"):
        assert checks[name].status == "ok", checks[name]
    assert checks["stream WORKFLOW_EVENTS"].status == "ok"
    # other tests' dead letters may sit in the shared DLQ: that is a warning, never a failure
    assert checks["stream WORKFLOW_EVENTS_DLQ"].status in ("ok", "warn")
    assert checks["event consumer"].status == "ok"
    # the test stack's dev server runs with task-queue fairness on
    assert checks["fairness"].status == "ok", checks["fairness"]
    assert checks["fairness"].detail.startswith("on: ")
    migrations = load_migrations()
    assert checks["migrations"].detail.startswith(f"current: {len(migrations)} of")
    for kind in ("workflow", "activity"):
        check = checks[f"{kind} pollers"]
        assert check.status == "fail"
        assert check.detail.startswith(
            f"no worker is polling task queue {TASK_QUEUE} for {kind} tasks"
        )
        assert check.fix == "start one: python -m stepwise_worker"
    text = render(list(checks.values()))
    assert "✗ workflow pollers" in text
    assert "→ start one: python -m stepwise_worker" in text
    assert "✗ 2 problem(s): workflow pollers, activity pollers" in text


async def test_a_polling_worker_is_green(
    database_url: str, temporal_address: str, nats_url: str, namespace: str, topology: None
) -> None:
    client = await connect_temporal(temporal_address, namespace, claims=None)
    async with Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[NoopWorkflow],
        activities=[noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
        identity="ops-doctor-worker",
    ):
        # one run makes sure both pollers reached the server before we ask
        await client.execute_workflow(
            NoopWorkflow.run, id=f"ops-doctor-{uuid.uuid4()}", task_queue=TASK_QUEUE
        )
        checks = _by_name(
            await Doctor(_targets(database_url, temporal_address, namespace, nats_url)).run()
        )
    for kind in ("workflow", "activity"):
        check = checks[f"{kind} pollers"]
        assert check.status == "ok", check
        assert "ops-doctor-worker" in check.detail
    assert not [c for c in checks.values() if c.status == "fail"]


async def test_runs_whose_workflow_task_fails_are_named(
    database_url: str, temporal_address: str, nats_url: str, namespace: str, failing_tasks_in: Any
) -> None:
    client = await connect_temporal(temporal_address, namespace, claims=None)
    run_ids = [uuid.uuid4() for _ in range(7)]
    async with failing_tasks_in(client) as tasks:
        for run_id in run_ids:
            await tasks.start(run_id)
        targets = _targets(database_url, temporal_address, namespace, nats_url)
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            check = _by_name(await Doctor(targets).run())["workflow tasks"]
            # the failures reach Temporal's visibility one by one
            if check.detail.startswith("7 ") or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
        assert check.status == "warn", check
        assert check.detail.startswith("7 run(s) whose workflow task keeps failing")
        assert "(first 5)" in check.detail
        named = check.detail.rsplit(": ", 1)[-1].split(", ")
        assert len(named) == 5 and set(named) <= {str(r) for r in run_ids}
        assert check.fix is not None and "stepwise runs show" in check.fix
        # a warning, never a failure: the stack itself works
        assert "✗ workflow tasks" not in render([check])


async def test_the_command_exits_1_and_prints_json(
    database_url: str, temporal_address: str, nats_url: str, namespace: str, topology: None
) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_NAMESPACE": namespace,
        "NATS_URL": nats_url,
        "STEPWISE_HOME": "/nonexistent-stepwise-home",
    }
    for name in ("STEPWISE_API_URL", "STEPWISE_WORKER_URL"):
        env.pop(name, None)
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "stepwise_cli", "doctor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    failing = {c["name"]: c for c in report["checks"] if c["status"] == "fail"}
    assert set(failing) == {"workflow pollers", "activity pollers"}
    assert failing["workflow pollers"]["fix"] == "start one: python -m stepwise_worker"
    skipped = {c["name"] for c in report["checks"] if c["status"] == "skip"}
    assert skipped == {"api", "worker", "event-router", "sweeper"}


@pytest.fixture
def empty_database() -> Iterator[str]:
    with scratch_database(ADMIN_URL, "stepwise_ops") as url:
        yield url


@pytest.mark.postgres
async def test_missing_migrations_are_named(empty_database: str) -> None:
    doctor = Doctor(_targets(empty_database, CLOSED, "default", "nats://" + CLOSED))
    (_, never) = await doctor.postgres()
    assert never.status == "fail" and "never migrated" in never.detail
    assert never.fix is not None and "python -m stepwise_contract.platform.migrate" in never.fix
    first, *rest = [m.version for m in load_migrations()]
    conn = await asyncpg.connect(empty_database)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version text PRIMARY KEY)")
        await conn.execute("INSERT INTO schema_migrations VALUES ($1), ('9999_future')", first)
    finally:
        await conn.close()
    (_, partial) = await doctor.postgres()
    assert partial.status == "fail"
    assert partial.detail == f"{len(rest)} of {len(rest) + 1} not applied: {', '.join(rest)}"


async def test_unreachable_dependencies_fail_fast_with_fixes() -> None:
    targets = Targets(
        database_url=f"postgresql://u:secret@{CLOSED}/db",
        temporal_address=CLOSED,
        temporal_namespace="default",
        nats_url=f"nats://{CLOSED}",
        services={"api": f"http://{CLOSED}"},
        timeout_s=3.0,
    )
    started = asyncio.get_running_loop().time()
    checks = _by_name(await Doctor(targets).run())
    assert asyncio.get_running_loop().time() - started < 15
    for name in ("postgres", "temporal", "nats", "api"):
        assert checks[name].status == "fail", checks[name]
        assert checks[name].fix
    assert "secret" not in checks["postgres"].detail and "u:***@" in checks["postgres"].detail
    for name in ("migrations", "workflow pollers", "jetstream", "stream WORKFLOW_EVENTS"):
        assert checks[name].status == "skip"
    assert checks["api"].fix == "start it: python -m stepwise_api"


@pytest.fixture
async def ready_and_unready() -> AsyncIterator[tuple[str, str]]:
    async def fine() -> None:
        return None

    async def broken() -> None:
        raise RuntimeError("Temporal frontend is not serving")

    good, bad = web.Application(), web.Application()
    add_ops_routes(good, {"postgres": fine})
    add_ops_routes(bad, {"postgres": fine, "temporal": broken})
    async with TestServer(good) as good_server, TestServer(bad) as bad_server:
        yield str(good_server.make_url("")), str(bad_server.make_url(""))


async def test_service_readiness_names_what_is_wrong(ready_and_unready: tuple[str, str]) -> None:
    good, bad = ready_and_unready
    doctor = Doctor(
        Targets(
            database_url="postgresql://x@127.0.0.1:1/x",
            temporal_address=CLOSED,
            temporal_namespace="default",
            nats_url=f"nats://{CLOSED}",
            services={"api": good, "worker": bad},
        )
    )
    checks = _by_name(await doctor.services())
    assert checks["api"].status == "ok"
    assert checks["worker"].status == "fail"
    assert "temporal: RuntimeError: Temporal frontend is not serving" in checks["worker"].detail
    assert "postgres" not in checks["worker"].detail
    assert checks["sweeper"].status == "skip"
    assert "--sweeper-url" in checks["sweeper"].detail
    assert "--router-url" in checks["event-router"].detail


async def test_a_cluster_list_with_one_dead_node_reaches_nats(
    database_url: str, temporal_address: str, nats_url: str, namespace: str, topology: None
) -> None:
    """NATS_URL as a cluster's list: the doctor connects through whichever node answers."""
    listed = f"nats://{CLOSED},{nats_url}"
    checks = _by_name(
        await Doctor(_targets(database_url, temporal_address, namespace, listed)).run()
    )
    assert checks["nats"].status == "ok", checks["nats"]
    assert checks["nats"].detail == f"reachable: {listed}"
    assert checks["jetstream"].status == "ok"
