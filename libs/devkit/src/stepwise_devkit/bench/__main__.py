"""`python -m stepwise_devkit.bench` (= `make bench`): SPEC §11 figures beside their baselines.

Starts a full stack (the same `Stack` as `make run`: Temporal dev server, nats-server, the four
services as processes) on a fresh database of the machine's Postgres, runs the hand-written baseline
worker as a process of its own against the same Temporal server (`baseline_worker.py`: this process
only generates load, for ours and for the baseline alike) — and, while the latency figures measure
their Temporal floor (`temporal_floor.py`), a second one on a queue of its own — measures, prints
one table and writes `$BENCH_OUT` (default `.stepwise/bench.json`). `--smoke` runs every figure at
a tiny size (used by `make test` so the harness never rots); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_worker.worker import WorkerOptions
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

from stepwise_devkit.bench import figures, isolation, temporal_floor
from stepwise_devkit.bench.baseline import FLOOR_TASK_QUEUE
from stepwise_devkit.bench.baseline_worker import BaselineWorker, baseline_worker_process
from stepwise_devkit.bench.noisy import noisy_neighbour
from stepwise_devkit.bench.run_phases import describe
from stepwise_devkit.scratch_database import add_pg_admin_url, scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi


@dataclass(frozen=True, slots=True)
class Sizes:
    overhead_runs: int
    # an uncounted first run of each side of the large-payload figure (its baseline's run waits
    # ~10 s for dev-server timer ticks: the smoke skips it)
    large_warm_up: bool
    launch_seconds: float
    launch_concurrency: int
    launch_rate: float
    waiting_runs: int
    burst_events: int
    paced_events: int
    paced_rate: float
    expired_rows: int
    writer_baseline_s: float
    hostile_runs: int
    isolation_samples: int
    noisy_flood: int
    noisy_paced: int
    noisy_rate: float


FULL = Sizes(
    overhead_runs=20,
    large_warm_up=True,
    launch_seconds=10,
    launch_concurrency=16,
    launch_rate=200,
    waiting_runs=10_000,
    burst_events=2_000,
    paced_events=200,
    paced_rate=20,
    expired_rows=1_000_000,
    writer_baseline_s=10,
    hostile_runs=20,
    isolation_samples=10,
    noisy_flood=3_000,
    noisy_paced=50,
    noisy_rate=2,
)
SMOKE = Sizes(
    overhead_runs=1,
    large_warm_up=False,
    launch_seconds=1,
    launch_concurrency=4,
    launch_rate=20,
    waiting_runs=20,
    burst_events=10,
    paced_events=5,
    paced_rate=10,
    expired_rows=2_000,
    writer_baseline_s=1,
    hostile_runs=2,
    isolation_samples=2,
    noisy_flood=20,
    noisy_paced=3,
    noisy_rate=5,
)


PARTS = ("overhead", "large", "launch", "events", "sweep", "isolation", "noisy")


async def measure(
    stack: Stack, sizes: Sizes, parts: tuple[str, ...] = PARTS
) -> tuple[Machine, list[figures.Figure]]:
    pool = await create_pool(stack.database_url, max_size=10)
    client = await connect_temporal(
        stack.temporal_address, "default", claims=PostgresClaimStore(pool)
    )
    publisher = await EventPublisher.connect(stack.nats_url, stack.tenant_id)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    # one connection per in-flight launch of the open loop (aiohttp's default caps at 100)
    connector = aiohttp.TCPConnector(limit=0)
    out: list[figures.Figure] = []
    host = await machine(client)
    print(host.render(), flush=True)
    baseline_worker = baseline_worker_process(
        stack.home, stack.temporal_address, stack.database_url
    )
    # the latency figures' Temporal floor: a worker set up as ours is, polling only while measured
    floor_worker = baseline_worker_process(
        stack.home,
        stack.temporal_address,
        stack.database_url,
        task_queue=FLOOR_TASK_QUEUE,
        workflow_task_slots=WorkerOptions().max_concurrent_workflow_tasks,
    )
    try:
        await asyncio.to_thread(baseline_worker.start)
        async with aiohttp.ClientSession(
            base_url=stack.api_url, headers=headers, connector=connector
        ) as session:
            api = StackApi(session)
            if "overhead" in parts:
                await _overhead(api, client, sizes, out)
            if "large" in parts:
                await _large(api, client, sizes, out)
            if "launch" in parts:
                await _launch(api, client, pool, sizes, out)
            if "events" in parts:
                await _events(api, client, pool, publisher, sizes, out)
            if "sweep" in parts:
                await _sweep(pool, sizes, out)
            if "isolation" in parts:
                await _isolation(api, client, pool, stack.api_url, floor_worker, sizes, out)
            if "noisy" in parts:
                await _noisy(stack, pool, client, floor_worker, sizes, out)
    finally:
        await asyncio.to_thread(baseline_worker.stop)
        await publisher.close()
        await pool.close()
    return host, out


async def _overhead(api: StackApi, client: Client, sizes: Sizes, out: list[figures.Figure]) -> None:
    print(f"bench: step overhead ({sizes.overhead_runs} runs of each) …", flush=True)
    o = await figures.step_overhead(api, client, sizes.overhead_runs)
    figures.note(f"ours end to end (HTTP launch → result): {o.ours_end_to_end_ms:.0f} ms")
    # our steps are local activities: beside regular activities the ratio is information only
    figures.note("step_overhead_vs_regular: information — our path does not use regular activities")
    out.append(
        figures.Figure(
            "step_overhead_vs_regular", o.ours_ms, o.regular_ms, "ms", "information", None
        )
    )
    out.append(
        figures.Figure(
            "step_overhead_vs_local",
            o.ours_ms,
            o.local_ms,
            "ms",
            "ratio <= 1.5",
            o.ours_ms <= 1.5 * o.local_ms,
        )
    )


async def _large(api: StackApi, client: Client, sizes: Sizes, out: list[figures.Figure]) -> None:
    print(f"bench: 1 MB through 10 steps ({sizes.overhead_runs} runs of each) …", flush=True)
    ours, local = await figures.large_payload_steps(
        api, client, sizes.overhead_runs, warm_up=sizes.large_warm_up
    )
    figures.note(
        "large baseline: a 1 ms timer ends each workflow task (inline 1 MB results); on the dev"
        " server it waits for the ~1 s timer tick, most of the baseline's time per step"
    )
    out.append(
        figures.Figure("large_payload_step_ms", ours, local, "ms", "ratio <= 1", ours <= local)
    )


async def _launch(
    api: StackApi, client: Client, pool: asyncpg.Pool, sizes: Sizes, out: list[figures.Figure]
) -> None:
    print("bench: launches …", flush=True)
    figures.note("launch baseline: raw start of a no-op workflow — a floor, not the same work")
    la = await figures.launches(
        api,
        client,
        pool,
        sizes.launch_seconds,
        sizes.launch_concurrency,
        sizes.launch_rate,
    )
    out.append(
        figures.Figure(
            "launch_per_s", la.per_s, la.base_per_s, "1/s", ">= 200", la.per_s >= 200, ">= 0.8"
        )
    )
    # the same loops counted over the loop alone: what each side took in while its executions
    # fell behind (information: a backlog left after the loop is not capacity)
    out.append(
        figures.Figure(
            "launch_intake_per_s",
            la.intake_per_s,
            la.base_intake_per_s,
            "1/s",
            "information",
            None,
        )
    )
    out.append(
        figures.Figure(
            "launch_p99_ms",
            la.p99_ms,
            la.base_p99_ms,
            "ms",
            f"<= 100 at {la.rate:g}/s",
            la.p99_ms <= 100 and la.achieved >= 0.95 * la.rate,
        )
    )
    half = la.rate / 2
    out.append(
        figures.Figure(
            "launch_p99_half_rate_ms",
            la.half_p99_ms,
            la.base_half_p99_ms,
            "ms",
            f"<= 100 at {half:g}/s",
            la.half_p99_ms <= 100,
            "<= 2",
        )
    )
    # where the launch ratio goes: the same closed loops, in CPU per run rather than runs per second
    out.append(
        figures.Figure(
            "launch_cpu_ms_per_run", la.cpu_ms, la.base_cpu_ms, "ms", "information", None
        )
    )


async def _events(
    api: StackApi,
    client: Client,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    sizes: Sizes,
    out: list[figures.Figure],
) -> None:
    print(f"bench: event routing with {sizes.waiting_runs} runs waiting …", flush=True)
    ev = await figures.event_routing(
        api,
        client,
        pool,
        publisher,
        sizes.waiting_runs,
        sizes.burst_events,
        sizes.paced_events,
        sizes.paced_rate,
    )
    out.append(
        figures.Figure(
            "events_routed_per_s",
            ev.per_s,
            ev.base_per_s,
            "1/s",
            ">= 500",
            ev.per_s >= 500,
            ">= 0.8",
        )
    )
    out.append(
        figures.Figure(
            "event_resume_p50_ms",
            ev.p50_ms,
            ev.base_p50_ms,
            "ms",
            "<= 50",
            ev.p50_ms <= 50,
            "<= 1.25",
        )
    )


async def _sweep(pool: asyncpg.Pool, sizes: Sizes, out: list[figures.Figure]) -> None:
    print(f"bench: sweeping {sizes.expired_rows} expired rows under a writer …", flush=True)
    sweep_p99, base_p99, _ = await figures.sweep_under_write(
        pool, sizes.expired_rows, sizes.writer_baseline_s
    )
    out.append(
        figures.Figure("sweep_writer_p99_ms", sweep_p99, base_p99, "ms", "<= 20", sweep_p99 <= 20)
    )


async def _isolation(
    api: StackApi,
    client: Client,
    pool: asyncpg.Pool,
    api_url: str,
    floor_worker: BaselineWorker,
    sizes: Sizes,
    out: list[figures.Figure],
) -> None:
    print(f"bench: expression isolation ({sizes.hostile_runs} hostile runs) …", flush=True)
    found = await isolation.expression_isolation(
        api, pool, api_url, sizes.hostile_runs, sizes.isolation_samples, client
    )
    figures.note(f"B alone: {describe(found.idle_phases)}")
    figures.note(f"B beside hostile runs: {describe(found.loaded_phases)}")
    figures.note(f"B beside benign runs: {describe(found.benign_phases)}")
    loaded, idle = found.loaded_ms, found.idle_ms
    figures.note("baseline = tenant B's idle p50 launch → SUCCEEDED on the same stack")
    figures.note(
        f"{found.hostile_runs} hostile runs, all FAILED with an ExpressionError; the slowest"
        f" {found.slowest_failure_s:.2f} s after its start"
    )
    out.append(
        figures.Figure(
            "expression_isolation", loaded, idle, "ms", "ratio <= 1.5", loaded <= 1.5 * idle
        )
    )
    # the same load without hostility: what keeping that many runs in flight costs B anyway
    out.append(
        figures.Figure(
            "expression_isolation_benign", found.benign_ms, idle, "ms", "information", None
        )
    )
    async with temporal_floor.running(floor_worker):
        floor = await temporal_floor.in_flight_floor(
            client, sizes.hostile_runs, sizes.isolation_samples
        )
    _floor_notes(floor, f"{sizes.hostile_runs} in flight")
    _floor_row("expression_isolation_x_idle", loaded / idle, floor, out)


async def _noisy(
    stack: Stack,
    pool: asyncpg.Pool,
    client: Client,
    floor_worker: BaselineWorker,
    sizes: Sizes,
    out: list[figures.Figure],
) -> None:
    print(
        f"bench: noisy neighbour ({sizes.noisy_paced} paced runs of B beside {sizes.noisy_flood}"
        " queued runs of A) …",
        flush=True,
    )
    n = await noisy_neighbour(
        stack, pool, client, sizes.noisy_flood, sizes.noisy_paced, sizes.noisy_rate
    )
    out.append(
        figures.Figure(
            "noisy_neighbour_p50_s",
            n.fair_p50_s,
            n.unfair_p50_s,
            "s",
            f"ratio <= 0.3, <= 3x idle {n.idle_p50_s:.2f}",
            n.fair_p50_s <= 0.3 * n.unfair_p50_s and n.fair_p50_s <= 3 * n.idle_p50_s,
        )
    )
    async with temporal_floor.running(floor_worker):
        floor = await temporal_floor.backlog_floor(
            client, floor_worker, sizes.noisy_flood, sizes.noisy_paced, sizes.noisy_rate
        )
    _floor_notes(floor, f"{sizes.noisy_flood} queued")
    _floor_row("noisy_neighbour_x_idle", n.fair_p50_s / n.idle_p50_s, floor, out)


def _floor_notes(floor: temporal_floor.Floor, load: str) -> None:
    for label, timed in (("alone", floor.idle), (f"beside {load}", floor.loaded)):
        figures.note(
            f"Temporal floor, B {label}: p50 {statistics.median(timed.latencies) * 1000:.0f} ms"
            f" ({describe(timed.phases)})"
        )


def _floor_row(
    name: str, ours_x_idle: float, floor: temporal_floor.Floor, out: list[figures.Figure]
) -> None:
    """B's latency under load as a multiple of its idle latency, ours beside the Temporal floor's
    (hand-written one-step workflows, no Stepwise code: what the machine itself costs B)."""
    figures.note(
        f"{name}: ours x{ours_x_idle:.2f} idle; hand-written Temporal code under the same"
        f" load x{floor.ratio:.2f} (the machine's floor)"
    )
    out.append(figures.Figure(name, ours_x_idle, floor.ratio, "x", "information", None))


def _verdict(ok: bool | None) -> str:
    return "info" if ok is None else "yes" if ok else "NO"


@dataclass(frozen=True, slots=True)
class Machine:
    cores: int
    temporal_server: str
    python: str
    platform: str

    def as_json(self) -> dict[str, object]:
        return {
            "cores": self.cores,
            "temporal_server": self.temporal_server,
            "python": self.python,
            "platform": self.platform,
        }

    def render(self) -> str:
        return (
            f"machine: {self.cores} cores, Temporal server {self.temporal_server},"
            f" Python {self.python}, {self.platform}"
        )


async def machine(client: Client) -> Machine:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    return Machine(
        cores=os.cpu_count() or 0,
        temporal_server=info.server_version or "unknown",
        python=platform.python_version(),
        platform=platform.platform(),
    )


def render(rows: list[figures.Figure]) -> str:
    header = (
        f"{'figure':<26} {'ours':>10} {'baseline':>10} {'unit':>5} {'ratio':>7}  {'target':<18} ok"
        "    ratio goal"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        goal = f"{f.ratio_goal:<8} {_verdict(f.ratio_ok)}" if f.ratio_goal else ""
        lines.append(
            f"{f.name:<26} {f.ours:>10.2f} {f.baseline:>10.2f} {f.unit:>5} {f.ratio:>7.2f}  "
            f"{f.target:<18} {_verdict(f.ok):<5} {goal}".rstrip()
        )
    lines.append(
        "ratio goal: against the hand-written Temporal baseline in this run (where the Temporal"
        " server itself caps the absolute target on this machine)"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stepwise-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (harness check only)")
    parser.add_argument(
        "--only",
        action="append",
        choices=PARTS,
        help="measure only this part (repeatable); default: all",
    )
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", ".stepwise/bench.json"))
    add_pg_admin_url(parser)
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    home = Path(tempfile.mkdtemp(prefix="stepwise-bench-"))
    env = {
        "STEPWISE_SWEEP_EXPIRY_INTERVAL_S": "1",
        "STEPWISE_LOG_LEVEL": "WARNING",
        # the large-payload figure launches with a 1 MB input
        "STEPWISE_MAX_PAYLOAD_BYTES": str(2 * 1024 * 1024),
    }
    with scratch_database(args.pg_admin_url, "stepwise_bench") as database_url:
        stack = Stack(home, database_url=database_url, extra_env=env, tenant_name="bench")
        try:
            print(f"bench: starting the stack under {home} …", flush=True)
            stack.start()
            host, rows = asyncio.run(measure(stack, sizes, tuple(args.only or PARTS)))
        finally:
            stack.stop()
    print(host.render())
    print(render(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        msgspec.json.format(
            msgspec.json.encode({"machine": host.as_json(), "figures": [r.as_json() for r in rows]})
        )
    )
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
