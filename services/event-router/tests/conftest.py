"""Router test harness on the real engines (NATS JetStream, Postgres, Temporal from the root conftest).

- `RecorderWorkflow` stands in for a waiting run: it records every event / human-task signal it
  gets. Tests start it with the run's workflow id (`workflow_id_for(run_id)`), on a task queue of
  their own, and insert the `WAITING` wait rows themselves — so the router side is tested exactly,
  independent of the interpreter.
- `bus` publishes envelopes, inserts waits and definitions, and waits for routing to finish.
- `router_in_process` runs the real `run_router` in this event loop with test settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import nats
import pytest
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from prometheus_client import CollectorRegistry
from stepwise_contract import names
from stepwise_contract.payloads import EventSignal, HumanTaskSignal
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.nats_connection import connect_nats
from stepwise_router.metrics import Metrics
from stepwise_router.service import run_router
from stepwise_router.settings import Settings
from stepwise_router.stream import ensure_topology
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

RECORDER_QUERY = "routerTestReceived"


class Received(msgspec.Struct, frozen=True, kw_only=True):
    events: list[EventSignal] = []
    tasks: list[HumanTaskSignal] = []
    # workflow time at which each event signal was handled (for the benchmark's latency)
    event_times: list[str] = []


@workflow.defn(name="RouterTestRecorder")
class RecorderWorkflow:
    def __init__(self) -> None:
        self.events: list[EventSignal] = []
        self.tasks: list[HumanTaskSignal] = []
        self.times: list[str] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=names.SIGNAL_EVENT)
    def on_event(self, signal: EventSignal) -> None:
        self.events.append(signal)
        self.times.append(workflow.now().isoformat())

    @workflow.signal(name=names.SIGNAL_HUMAN_TASK)
    def on_task(self, signal: HumanTaskSignal) -> None:
        self.tasks.append(signal)

    @workflow.query(name=RECORDER_QUERY)
    def received(self) -> Received:
        return Received(events=self.events, tasks=self.tasks, event_times=self.times)


class Recorder:
    def __init__(self, client: Client, task_queue: str) -> None:
        self.client = client
        self.task_queue = task_queue

    async def start(self, run_id: uuid.UUID) -> None:
        await self.client.start_workflow(
            "RouterTestRecorder",
            id=names.workflow_id_for(str(run_id)),
            task_queue=self.task_queue,
            execution_timeout=timedelta(minutes=10),
        )

    async def received(self, run_id: uuid.UUID) -> Received:
        handle = self.client.get_workflow_handle(names.workflow_id_for(str(run_id)))
        received: Received = await handle.query(RECORDER_QUERY, result_type=Received)
        return received

    async def terminate(self, run_id: uuid.UUID) -> None:
        handle = self.client.get_workflow_handle(names.workflow_id_for(str(run_id)))
        with contextlib.suppress(Exception):
            await handle.terminate("test over")


@pytest.fixture(scope="session")
async def recorder(temporal_client: Client) -> AsyncIterator[Recorder]:
    task_queue = f"router-test-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        temporal_client,
        task_queue=task_queue,
        workflows=[RecorderWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        yield Recorder(temporal_client, task_queue)


@pytest.fixture(scope="session")
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url, name="router-tests")
    jsc = nc.jetstream()
    await ensure_topology(jsc, max_deliver=5, ack_wait_s=30)
    try:
        yield jsc
    finally:
        await nc.drain()


async def eventually(
    check: Callable[[], Any], *, within: float = 15.0, interval: float = 0.05, what: str = ""
) -> Any:
    """Poll an async `check` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(interval)


class Bus:
    """Publishing events and preparing/reading the rows the router works on."""

    eventually = staticmethod(eventually)

    def __init__(self, js: JetStreamContext, pool: asyncpg.Pool) -> None:
        self.js = js
        self.pool = pool
        self.last_seq = 0  # stream sequence of the last `publish`
        self.last_duplicate = False  # JetStream dropped the last publish as a duplicate

    async def publish(
        self,
        tenant: str,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        key: str | None = None,
        msg_id: str | None = None,
        **extra: Any,
    ) -> str:
        event_id = event_id or str(uuid.uuid4())
        body: dict[str, Any] = {
            "event_id": event_id,
            "event_type": event_type,
            "tenant": tenant,
            "timestamp": "2026-01-01T00:00:00Z",
            "payload": payload or {},
            **extra,
        }
        if key is not None:
            body["workflow_correlation_key"] = key
        self.last_seq = await self.publish_raw(
            names.event_subject(tenant, event_type), msgspec.json.encode(body), msg_id or event_id
        )
        return event_id

    async def publish_raw(self, subject: str, data: bytes, msg_id: str | None = None) -> int:
        headers = {names.MSG_ID_HEADER: msg_id} if msg_id else None
        ack = await self.js.publish(subject, data, headers=headers)
        self.last_duplicate = bool(ack.duplicate)
        return int(ack.seq)

    async def insert_wait(
        self,
        tenant: str,
        run_id: uuid.UUID,
        event_name: str,
        key: str | None,
        *,
        wait_type: str = "event",
        status: str = "WAITING",
    ) -> uuid.UUID:
        wait_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type, key,"
            " event_name, status) VALUES ($1, $2, $3, 'root.steps[0]', $4, $5, $6, $7)",
            wait_id, uuid.UUID(tenant), run_id, wait_type, key, event_name, status,
        )  # fmt: skip
        return wait_id

    async def event_row(self, tenant: str, event_id: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT * FROM workflow_runtime_events WHERE tenant = $1 AND event_id = $2",
            uuid.UUID(tenant),
            event_id,
        )

    async def processed(
        self, tenant: str, event_id: str, *, within: float = 15.0
    ) -> asyncpg.Record:
        async def check() -> asyncpg.Record | None:
            row = await self.event_row(tenant, event_id)
            return row if row is not None and row["processed_at"] is not None else None

        result: asyncpg.Record = await eventually(
            check, within=within, what=f"event {event_id} processed"
        )
        return result

    async def all_processed(self, tenant: str, count: int, *, within: float = 60.0) -> None:
        async def check() -> bool:
            done = await self.pool.fetchval(
                "SELECT count(*) FROM workflow_runtime_events"
                " WHERE tenant = $1 AND processed_at IS NOT NULL",
                uuid.UUID(tenant),
            )
            return bool(done >= count)

        await eventually(check, within=within, interval=0.2, what=f"{count} events processed")

    async def stream_last_seq(self) -> int:
        info = await self.js.stream_info(names.EVENTS_STREAM)
        return int(info.state.last_seq)

    async def consumer_settled(self, stream_seq: int, *, within: float = 15.0) -> None:
        """Every message up to `stream_seq` acknowledged by the router(s)."""

        async def check() -> bool:
            info = await self.js.consumer_info(names.EVENTS_STREAM, names.EVENTS_CONSUMER)
            return bool(info.ack_floor.stream_seq >= stream_seq and info.num_ack_pending == 0)

        await eventually(check, within=within, what=f"stream seq {stream_seq} acked")

    async def dead_letters(self, tenant: str, count: int, *, within: float = 10.0) -> list[Msg]:
        sub = await self.js.pull_subscribe(names.dlq_subject(tenant), stream=names.DLQ_STREAM)
        got: list[Msg] = []
        deadline = time.monotonic() + within
        try:
            while len(got) < count and time.monotonic() < deadline:
                with contextlib.suppress(nats.errors.TimeoutError):
                    got.extend(await sub.fetch(count - len(got), timeout=1))
            # nothing more than expected
            with contextlib.suppress(nats.errors.TimeoutError):
                got.extend(await sub.fetch(1, timeout=0.5))
        finally:
            await sub.unsubscribe()
        return got

    async def redeliver(
        self, tenant: str, event_type: str, payload: dict[str, Any], event_id: str
    ) -> asyncpg.Record:
        """The same event again, as after a crash before its row was finished; its processed row."""
        await self.pool.execute(
            "UPDATE workflow_runtime_events SET processed_at = NULL"
            " WHERE tenant = $1 AND event_id = $2",
            uuid.UUID(tenant), event_id,
        )  # fmt: skip
        # a fresh message id: JetStream would drop a repeated one as a duplicate
        await self.publish(tenant, event_type, payload, event_id=event_id, msg_id=str(uuid.uuid4()))
        return await self.processed(tenant, event_id)

    async def runs(self, tenant: str) -> list[asyncpg.Record]:
        """The tenant's runs, oldest first."""
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT * FROM workflow_runs WHERE tenant = $1 ORDER BY started_at", uuid.UUID(tenant)
        )
        return rows

    async def insert_unstarted_run(
        self, tenant: str, workflow_id: uuid.UUID, event_id: str, *, priority: int = 3
    ) -> uuid.UUID:
        """The row a delivery that died before the Temporal start leaves (no Temporal run id)."""
        run_id = uuid.uuid4()
        await self.pool.execute(
            "INSERT INTO workflow_runs (run_id, tenant, workflow_id, workflow_version, status,"
            " input_json, trigger_type, trigger_fire_key, root_run_id, priority)"
            " VALUES ($1, $2, $3, 1, 'RUNNING', '{}', 'event', $4, $1, $5)",
            run_id, uuid.UUID(tenant), workflow_id,
            names.trigger_fire_key(event_id, str(workflow_id)), priority,
        )  # fmt: skip
        return run_id

    async def add_workflow(
        self,
        tenant: str,
        event_name: str,
        *,
        mapping: dict[str, Any] | None = None,
        schema: Any = None,
        status: str = "published",
        paused: bool = False,
        priority: int | None = None,
    ) -> uuid.UUID:
        workflow_id = uuid.uuid4()
        trigger: dict[str, Any] = {"type": "event", "eventName": event_name}
        if mapping is not None:
            trigger["payloadMapping"] = mapping
        definition: dict[str, Any] = {"name": "triggered", "trigger": trigger, "steps": []}
        if priority is not None:
            definition["priority"] = priority
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO workflow_definitions (workflow_id, tenant, name, trigger,"
                " trigger_event_name, draft_definition, status, is_paused, latest_published_version)"
                " VALUES ($1, $2, 'triggered', $3, $4, $5, $6, $7, 1)",
                workflow_id, uuid.UUID(tenant), trigger, event_name, definition, status, paused,
            )  # fmt: skip
            await conn.execute(
                "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
                " definition_json, payload_schema_json, definition_hash)"
                " VALUES ($1, $2, $3, 1, $4, $5, 'hash')",
                uuid.uuid4(), uuid.UUID(tenant), workflow_id, definition, schema,
            )  # fmt: skip
        return workflow_id


@pytest.fixture
def bus(js: JetStreamContext, pool: asyncpg.Pool) -> Bus:
    return Bus(js, pool)


TEST_ENV = {
    "STEPWISE_EVENT_MAX_DELIVER": "3",
    "STEPWISE_ROUTER_BACKOFF_S": "0.2",
    "STEPWISE_ROUTER_ACK_WAIT_S": "5",
    "STEPWISE_ROUTER_CONCURRENCY": "8",
}


class RunningRouter:
    def __init__(self, metrics: Metrics, registry: CollectorRegistry) -> None:
        self.metrics = metrics
        self.registry = registry

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0


@contextlib.asynccontextmanager
async def router_in_process(
    service_env: dict[str, str],
    temporal_client: Client,
    *,
    database_url: str | None = None,
    client: Client | None = None,
    **overrides: str,
) -> AsyncIterator[RunningRouter]:
    """The real router (`run_router`) in this event loop; stopped gracefully on exit.

    `client` replaces the session's Temporal client (e.g. one whose starts fail)."""
    env = {**service_env, **TEST_ENV, **overrides}
    if database_url:
        env["DATABASE_URL"] = database_url
    settings = Settings.from_env(env)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    pool = await create_pool(settings.common.database_url, max_size=settings.concurrency + 2)
    nc = await connect_nats(settings.common.nats, name="router-in-process")
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_router(
            settings, pool=pool, client=client or temporal_client, nc=nc, metrics=metrics, stop=stop
        )
    )
    try:
        await asyncio.sleep(0.2)
        if task.done():
            task.result()
        yield RunningRouter(metrics, registry)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await nc.drain()
        await pool.close()


StartRouter = Callable[..., contextlib.AbstractAsyncContextManager[RunningRouter]]


@pytest.fixture(scope="session")
def start_router(service_env: dict[str, str], temporal_client: Client) -> StartRouter:
    """`async with start_router(**env_overrides) as r:` runs an in-process router."""
    return functools.partial(router_in_process, service_env, temporal_client)
