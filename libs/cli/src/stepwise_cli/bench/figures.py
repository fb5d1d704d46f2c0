"""The SPEC §11 measurements. Each returns (ours, baseline) measured in the same run.

Ours goes through the public interfaces (HTTP launch, NATS publish) of a running stack; the
baseline does the same work directly on Temporal with the hand-written workflows of `baseline.py`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import msgspec
import nats
from stepwise_contract.envelope import EventEnvelope, encode_envelope
from stepwise_contract.names import MSG_ID_HEADER, event_subject, workflow_id_for
from temporalio.client import Client

from stepwise_cli.bench.baseline import BASELINE_TASK_QUEUE, STEPS


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    ours: float
    baseline: float
    unit: str
    target: str
    ok: bool

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": round(self.ours, 3),
            "baseline": round(self.baseline, 3),
            "unit": self.unit,
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "ok": self.ok,
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


class Api:
    """A thin client of the Stepwise HTTP API for the bench."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        async with self.session.request(method, path, json=body) as resp:
            data = await resp.json(content_type=None)
            if resp.status >= 300:
                raise RuntimeError(f"{method} {path} → {resp.status}: {data}")
            return data

    async def publish_definition(self, definition: dict[str, Any]) -> str:
        created = await self.call("POST", "/api/workflow-definitions", {"definition": definition})
        workflow_id = str(created["workflowId"])
        await self.call("POST", f"/api/workflow-definitions/{workflow_id}/publish", {})
        return workflow_id

    async def launch(self, workflow_id: str, payload: dict[str, Any]) -> str:
        data = await self.call(
            "POST", "/api/workflow-runs", {"workflowId": workflow_id, "payload": payload}
        )
        return str(data["runId"])


def echo_definition(name: str) -> dict[str, Any]:
    steps = [
        {
            "id": f"s{i}",
            "type": "action.call",
            "config": {
                "actionId": "core.echo",
                "version": 1,
                "inputMapping": {"value": {"$expr": "payload.n"}},
                "saveAs": f"vars.out{i}",
            },
        }
        for i in range(STEPS)
    ]
    return {"name": name, "steps": steps}


def wait_definition(name: str, event_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "w",
                "type": "event.wait",
                "config": {
                    "eventName": event_name,
                    "correlationKey": {"$expr": "payload.key"},
                    "timeoutMs": 3_600_000,
                },
            },
            {"id": "done", "type": "state.set", "config": {"state": "resumed"}},
        ],
    }


async def _timed(make: Callable[[], Awaitable[Any]], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await make()
        samples.append(time.perf_counter() - started)
    return samples


async def step_overhead(api: Api, client: Client, runs: int) -> tuple[float, float, float]:
    """Median seconds of a 10-step core.echo run: ours, regular and local baselines."""
    workflow_id = await api.publish_definition(
        echo_definition(f"bench-echo-{uuid.uuid4().hex[:6]}")
    )

    async def ours() -> None:
        run_id = await api.launch(workflow_id, {"n": 1})
        await client.get_workflow_handle(workflow_id_for(run_id)).result()

    async def baseline(kind: str) -> None:
        await client.execute_workflow(
            kind, 1, id=f"bench-{kind}-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
        )

    # warm up both paths (first workflow task, code paths, pools)
    await ours()
    await baseline("BenchRegular10")
    await baseline("BenchLocal10")
    ours_s = await _timed(ours, runs)
    regular_s = await _timed(lambda: baseline("BenchRegular10"), runs)
    local_s = await _timed(lambda: baseline("BenchLocal10"), runs)
    return statistics.median(ours_s), statistics.median(regular_s), statistics.median(local_s)


async def _load(
    make: Callable[[], Awaitable[Any]], seconds: float, concurrency: int
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await make()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies


async def launch_rate(
    api: Api, client: Client, seconds: float, concurrency: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(launches/s, p99 ms) through the API, and the same for raw Temporal starts."""
    definition = {
        "name": f"bench-launch-{uuid.uuid4().hex[:6]}",
        "steps": [{"id": "s", "type": "state.set", "config": {"state": "x"}}],
    }
    workflow_id = await api.publish_definition(definition)
    ours_rate, ours_lat = await _load(lambda: api.launch(workflow_id, {}), seconds, concurrency)

    async def start() -> None:
        await client.start_workflow(
            "BenchLocal10", 1, id=f"bench-start-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
        )

    base_rate, base_lat = await _load(start, seconds, concurrency)
    return (
        (ours_rate, percentile(ours_lat, 0.99) * 1000),
        (base_rate, percentile(base_lat, 0.99) * 1000),
    )


async def _wait_for(check: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.25)
    raise TimeoutError(f"bench: timed out waiting for {what}")


async def event_routing(
    api: Api,
    client: Client,
    pool: asyncpg.Pool,
    nats_url: str,
    tenant: str,
    waiting: int,
    events: int,
    rate_cap: float,
) -> tuple[tuple[float, float], tuple[float, float]]:
    """(events/s routed, p50 publish→resume ms) with `waiting` runs parked on event.wait.

    The baseline signals hand-written waiter workflows directly: signals/s and p50 signal→complete.
    """
    event_name = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    workflow_id = await api.publish_definition(
        wait_definition(f"bench-wait-{event_name}", event_name)
    )
    keys = [f"k{i}" for i in range(waiting)]
    sem = asyncio.Semaphore(32)

    async def park(key: str) -> None:
        async with sem:
            await api.launch(workflow_id, {"key": key})

    await asyncio.gather(*(park(k) for k in keys))

    async def all_parked() -> bool:
        count = await pool.fetchval(
            "SELECT count(*) FROM workflow_run_waits w JOIN workflow_runs r USING (run_id)"
            " WHERE r.workflow_id = $1 AND w.status = 'WAITING'",
            uuid.UUID(workflow_id),
        )
        return int(count) >= waiting

    await _wait_for(all_parked, 60 + waiting / 20, f"{waiting} runs to reach event.wait")

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    published: dict[str, float] = {}
    interval = 1.0 / rate_cap if rate_cap > 0 else 0.0
    first = time.time()
    for key in keys[:events]:
        env = EventEnvelope(
            event_id=str(uuid.uuid4()),
            event_type=event_name,
            tenant=tenant,
            workflow_correlation_key=key,
            payload={"key": key},
        )
        published[key] = time.time()
        await js.publish(
            event_subject(tenant, event_name),
            encode_envelope(env),
            headers={MSG_ID_HEADER: env.event_id},
        )
        if interval:
            await asyncio.sleep(interval)
    await nc.drain()

    async def all_resumed() -> bool:
        count = await pool.fetchval(
            "SELECT count(*) FROM workflow_run_waits w JOIN workflow_runs r USING (run_id)"
            " WHERE r.workflow_id = $1 AND w.status = 'RESOLVED'",
            uuid.UUID(workflow_id),
        )
        return int(count) >= events

    await _wait_for(all_resumed, 60 + events / 10, f"{events} runs to resume")
    rows = await pool.fetch(
        "SELECT r.input_json->>'key' AS key, extract(epoch FROM w.resolved_at) AS resolved"
        " FROM workflow_run_waits w JOIN workflow_runs r USING (run_id)"
        " WHERE r.workflow_id = $1 AND w.status = 'RESOLVED'",
        uuid.UUID(workflow_id),
    )
    resumes = [float(r["resolved"]) - published[r["key"]] for r in rows if r["key"] in published]
    last = max(float(r["resolved"]) for r in rows)
    ours = (len(resumes) / max(last - first, 1e-6), statistics.median(resumes) * 1000)

    # baseline: the same number of parked hand-written workflows, signalled directly
    handles = []
    for _ in range(events):
        handles.append(
            await client.start_workflow(
                "BenchWaiter", id=f"bench-wait-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
            )
        )
    await asyncio.sleep(1.0)
    latencies: list[float] = []

    async def signal_and_wait(handle: Any, sent: float) -> None:
        await handle.result()
        latencies.append(time.time() - sent)

    waits = []
    first = time.time()
    for handle in handles:
        sent = time.time()
        await handle.signal("bench_event", {"x": 1})
        waits.append(asyncio.create_task(signal_and_wait(handle, sent)))
        if interval:
            await asyncio.sleep(interval)
    await asyncio.gather(*waits)
    base = (events / max(time.time() - first, 1e-6), statistics.median(latencies) * 1000)
    return ours, base


UPSERT = (
    "INSERT INTO workflow_data_store (store_id, tenant, namespace, key, value, revision)"
    " VALUES ($1, $2, 'bench', $3, $4, 1) ON CONFLICT (tenant, namespace, key)"
    " DO UPDATE SET value = EXCLUDED.value, revision = workflow_data_store.revision + 1,"
    " updated_at = now()"
)


async def _writer(pool: asyncpg.Pool, tenant: uuid.UUID, stop: asyncio.Event) -> list[float]:
    latencies = []
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        await pool.execute(
            UPSERT, uuid.uuid4(), tenant, f"w{i % 100}", msgspec.json.encode({"i": i}).decode()
        )
        latencies.append(time.perf_counter() - started)
        i += 1
        await asyncio.sleep(0.002)
    return latencies


async def sweep_under_write(
    pool: asyncpg.Pool, expired_rows: int, baseline_s: float
) -> tuple[float, float]:
    """Writer p99 ms while the sweeper deletes `expired_rows`, and with no sweep (baseline)."""
    tenant = uuid.uuid4()
    stop = asyncio.Event()
    task = asyncio.create_task(_writer(pool, tenant, stop))
    await asyncio.sleep(baseline_s)
    stop.set()
    baseline = await task

    await pool.execute(
        "INSERT INTO workflow_data_store (store_id, tenant, namespace, key, value, expires_at)"
        " SELECT gen_random_uuid(), $1, 'expired', 'k' || g, '1'::jsonb, now() - interval '1 hour'"
        " FROM generate_series(1, $2) g",
        tenant,
        expired_rows,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(_writer(pool, tenant, stop))

    async def swept() -> bool:
        left = await pool.fetchval(
            "SELECT count(*) FROM workflow_data_store WHERE tenant = $1 AND namespace = 'expired'",
            tenant,
        )
        return int(left) == 0

    try:
        await _wait_for(
            swept, 120 + expired_rows / 2000, f"the sweeper to delete {expired_rows} rows"
        )
    finally:
        stop.set()
        ours = await task
    return percentile(ours, 0.99) * 1000, percentile(baseline, 0.99) * 1000
