"""Router benchmark (SPEC §11 "events"): events/s routed and publish → signal latency.

Not a test: run it by hand, it prints one table.

    .venv/bin/python services/event-router/bench/bench_router.py [--events 2000] [--runs 200]
        [--waits 10000] [--concurrency 32] [--replicas 1]

It starts its own nats-server and Temporal dev server (from the wheels) and a fresh database on the
machine's Postgres (`STEPWISE_TEST_PG_ADMIN_URL`, default postgresql://postgres@127.0.0.1/postgres),
inserts `--waits` WAITING event waits of which `--runs` belong to real running workflows (a recorder
that notes the workflow time at which each signal is handled), starts `--replicas` router processes
(`python -m stepwise_router`), then:

1. latency: events one at a time (each published after the previous was signalled): publish → the
   signal handled in the workflow, and publish → the router's row `processed_at`;
2. throughput: `--events` events published as fast as JetStream acks them; events/s from the first
   publish to the last signal handled;
3. the router's own ceiling: as many events that match no wait (no Temporal call);
4. baseline: the same number of signals sent straight from a Temporal client with the router's
   concurrency — the floor the router's own work sits on.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import msgspec
import nats
from stepwise_contract import names
from stepwise_contract.payloads import EventSignal
from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.migrate import migrate
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready
from stepwise_devkit.infra_servers import nats_server, temporal_dev_server_headless
from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

QUEUE = "bench-router-recorder"
TIMES_QUERY = "benchTimes"


class Seen(msgspec.Struct, frozen=True):
    event_id: str
    handled_at: str  # workflow time of the task that handled the signal


@workflow.defn(name="BenchRouterRecorder")
class Recorder:
    def __init__(self) -> None:
        self.seen: list[Seen] = []

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.signal(name=names.SIGNAL_EVENT)
    def on_event(self, signal: EventSignal) -> None:
        self.seen.append(Seen(signal.event_id, workflow.now().isoformat()))

    @workflow.query(name=TIMES_QUERY)
    def times(self) -> list[Seen]:
        return self.seen


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def fresh_database(admin_url: str) -> str:
    name = f"stepwise_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    await migrate(url)
    return url


async def seen_times(client: Client, runs: list[uuid.UUID]) -> dict[str, float]:
    """event id → epoch seconds at which a workflow handled its signal."""
    out: dict[str, float] = {}
    for run_id in runs:
        handle = client.get_workflow_handle(names.workflow_id_for(str(run_id)))
        for seen in await handle.query(TIMES_QUERY, result_type=list[Seen]):
            out.setdefault(seen.event_id, datetime.fromisoformat(seen.handled_at).timestamp())
    return out


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="stepwise-bench-router-"))
    nats_proc, nats_url = nats_server(home)
    temporal_proc, temporal_address = temporal_dev_server_headless(home)
    nats_proc.start()
    temporal_proc.start()
    routers: list[ManagedProcess] = []
    try:
        await asyncio.to_thread(nats_proc.wait_ready, 30)
        await asyncio.to_thread(temporal_proc.wait_ready, 60)
        admin = os.environ.get(
            "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        )
        database_url = await fresh_database(admin)
        pool = await create_pool(database_url, max_size=4)
        client = await connect_temporal(
            temporal_address, "default", claims=PostgresClaimStore(pool)
        )
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        tenant = uuid.uuid4()
        async with Worker(
            client,
            task_queue=QUEUE,
            workflows=[Recorder],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_concurrent_workflow_tasks=200,
        ):
            runs = [uuid.uuid4() for _ in range(args.runs)]
            await asyncio.gather(
                *(
                    client.start_workflow(
                        "BenchRouterRecorder",
                        id=names.workflow_id_for(str(r)),
                        task_queue=QUEUE,
                        execution_timeout=timedelta(hours=1),
                    )
                    for r in runs
                )
            )
            # every wait keyed: run i on key k<i>; the others on keys no event carries
            rows = [(uuid.uuid4(), tenant, r, f"k{i}") for i, r in enumerate(runs)]
            rows += [
                (uuid.uuid4(), tenant, uuid.uuid4(), f"idle-{i}")
                for i in range(max(args.waits - args.runs, 0))
            ]
            await pool.executemany(
                "INSERT INTO workflow_run_waits (wait_id, tenant, run_id, step_path, wait_type,"
                " key, event_name, status) VALUES ($1, $2, $3, 'root', 'event', $4, 'BENCH',"
                " 'WAITING')",
                rows,
            )
            await pool.execute("ANALYZE workflow_run_waits")

            env = {
                "DATABASE_URL": database_url,
                "TEMPORAL_ADDRESS": temporal_address,
                "NATS_URL": nats_url,
                "STEPWISE_ROUTER_CONCURRENCY": str(args.concurrency),
                "STEPWISE_ROUTER_BATCH": str(args.concurrency),
                "STEPWISE_BIND_HOST": "127.0.0.1",
            }
            for i in range(args.replicas):
                port = free_port()
                proc = ManagedProcess(
                    name=f"router-{i}",
                    argv=[sys.executable, "-m", "stepwise_router"],
                    log_path=home / f"router-{i}.log",
                    env={**env, "STEPWISE_ROUTER_PORT": str(port)},
                    ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
                )
                routers.append(proc.start())
            for proc in routers:
                await asyncio.to_thread(proc.wait_ready, 60)

            async def publish(i: int) -> tuple[str, float]:
                event_id = str(uuid.uuid4())
                body = {
                    "event_id": event_id,
                    "event_type": "BENCH",
                    "tenant": str(tenant),
                    "payload": {"ticketId": f"k{i % args.runs}"},
                }
                sent = time.time()
                await js.publish(
                    names.event_subject(str(tenant), "BENCH"),
                    msgspec.json.encode(body),
                    headers={names.MSG_ID_HEADER: event_id},
                )
                return event_id, sent

            async def processed_count() -> int:
                count: int = await pool.fetchval(
                    "SELECT count(*) FROM workflow_runtime_events WHERE processed_at IS NOT NULL"
                )
                return count

            async def until_processed(target: int) -> None:
                while True:
                    if await processed_count() >= target:
                        return
                    await asyncio.sleep(0.05)

            # 1. latency, one event at a time
            latency_signal: list[float] = []
            latency_row: list[float] = []
            for i in range(args.latency_events):
                event_id, sent = await publish(i)
                run = runs[i % args.runs]
                handle = client.get_workflow_handle(names.workflow_id_for(str(run)))
                while True:
                    seen = await handle.query(TIMES_QUERY, result_type=list[Seen])
                    hit = [s for s in seen if s.event_id == event_id]
                    if hit:
                        handled = datetime.fromisoformat(hit[0].handled_at).timestamp()
                        latency_signal.append(handled - sent)
                        break
                    await asyncio.sleep(0.005)
                done_at = await pool.fetchval(
                    "SELECT processed_at FROM workflow_runtime_events WHERE event_id = $1",
                    event_id,
                )
                latency_row.append(done_at.timestamp() - sent)

            # 2. throughput
            base = await processed_count()
            started = time.time()
            sent_at: dict[str, float] = {}
            for chunk in range(0, args.events, 200):
                pairs = await asyncio.gather(
                    *(publish(i) for i in range(chunk, min(chunk + 200, args.events)))
                )
                sent_at.update(pairs)
            published = time.time()
            await until_processed(base + args.events)
            routed = time.time()
            handled_at = await seen_times(client, runs)
            last_signal = max(handled_at[e] for e in sent_at)
            missing = [e for e in sent_at if e not in handled_at]
            loaded_latency = [handled_at[e] - sent_at[e] for e in sent_at if e in handled_at]

            # 2b. the router's own ceiling: events that match no wait (no Temporal call)
            async def unmatched(i: int) -> None:
                event_id = str(uuid.uuid4())
                body = {"event_id": event_id, "event_type": "NOBODY", "tenant": str(tenant),
                        "payload": {"ticketId": f"none-{i}"}}  # fmt: skip
                await js.publish(
                    names.event_subject(str(tenant), "NOBODY"),
                    msgspec.json.encode(body),
                    headers={names.MSG_ID_HEADER: event_id},
                )

            base = await processed_count()
            unmatched_start = time.time()
            for chunk in range(0, args.events, 200):
                await asyncio.gather(
                    *(unmatched(i) for i in range(chunk, min(chunk + 200, args.events)))
                )
            await until_processed(base + args.events)
            unmatched_rate = args.events / (time.time() - unmatched_start)

            # 3. baseline: direct Temporal signals at the same concurrency
            limit = asyncio.Semaphore(args.concurrency)

            async def direct(i: int) -> None:
                run = runs[i % args.runs]
                async with limit:
                    await client.get_workflow_handle(names.workflow_id_for(str(run))).signal(
                        names.SIGNAL_EVENT,
                        EventSignal(event_id=str(uuid.uuid4()), event_name="BENCH"),
                    )

            base_start = time.time()
            await asyncio.gather(*(direct(i) for i in range(args.events)))
            base_rate = args.events / (time.time() - base_start)

        rate = args.events / (last_signal - started)
        ms = 1000.0
        print()
        print(f"router bench: {args.events} events, {args.runs} runs signalled, {args.waits}"
              f" waiting rows, {args.replicas} replica(s) x concurrency {args.concurrency},"
              f" {os.cpu_count()} CPUs")  # fmt: skip
        print(f"{'figure':44} {'ours':>10} {'baseline':>10} {'ratio':>7}")
        print(f"{'events/s publish -> signal handled':44} {rate:10.1f} {base_rate:10.1f}"
              f" {rate / base_rate:7.2f}")  # fmt: skip
        print(f"{'events/s publish -> row processed':44}"
              f" {args.events / (routed - started):10.1f}")  # fmt: skip
        print(f"{'events/s matching no wait (router + Postgres)':44} {unmatched_rate:10.1f}")
        print(f"{'publish rate (acked by JetStream) /s':44}"
              f" {args.events / (published - started):10.1f}")  # fmt: skip
        for label, values in (
            ("idle p50 publish -> signal handled (ms)", latency_signal),
            ("idle p90 publish -> signal handled (ms)", latency_signal),
            ("idle p50 publish -> row processed (ms)", latency_row),
        ):
            q = 0.9 if "p90" in label else 0.5
            print(f"{label:44} {pct(values, q) * ms:10.1f}")
        print(f"{'loaded p50 publish -> signal handled (ms)':44}"
              f" {statistics.median(loaded_latency) * ms:10.1f}")  # fmt: skip
        print(f"{'events never signalled':44} {len(missing):10d}")
        await nc.drain()
        await pool.close()
    finally:
        for proc in routers:
            proc.stop()
        temporal_proc.stop()
        nats_proc.stop()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--latency-events", type=int, default=100)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--waits", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--replicas", type=int, default=1)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
