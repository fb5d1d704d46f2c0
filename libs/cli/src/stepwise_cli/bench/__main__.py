"""`python -m stepwise_cli.bench` (= `make bench`): SPEC §11 figures beside their baselines.

Starts a full stack (the same `Stack` as `make run`: Temporal dev server, nats-server, the four
services as processes) on a fresh database of the machine's Postgres, runs the hand-written baseline
worker in this process against the same Temporal server, measures, prints one table and writes
`$BENCH_OUT` (default `.stepwise/bench.json`). `--smoke` runs every figure at a tiny size (used by
`make test` so the harness never rots); its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import msgspec
from stepwise_contract.db import create_pool
from stepwise_contract.temporal import connect_temporal
from temporalio.worker import Worker

from stepwise_cli.bench import figures
from stepwise_cli.bench.baseline import ACTIVITIES, BASELINE_TASK_QUEUE, WORKFLOWS
from stepwise_cli.stack import Stack


@dataclass(frozen=True, slots=True)
class Sizes:
    overhead_runs: int
    launch_seconds: float
    launch_concurrency: int
    waiting_runs: int
    events: int
    event_rate_cap: float
    expired_rows: int
    writer_baseline_s: float


FULL = Sizes(
    overhead_runs=20,
    launch_seconds=10,
    launch_concurrency=32,
    waiting_runs=10_000,
    events=2_000,
    event_rate_cap=0,
    expired_rows=1_000_000,
    writer_baseline_s=10,
)
SMOKE = Sizes(
    overhead_runs=2,
    launch_seconds=1,
    launch_concurrency=4,
    waiting_runs=20,
    events=10,
    event_rate_cap=0,
    expired_rows=2_000,
    writer_baseline_s=1,
)


async def _admin(url: str, sql: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def measure(stack: Stack, sizes: Sizes) -> list[figures.Figure]:
    client = await connect_temporal(stack.temporal_address, "default")
    pool = await create_pool(stack.database_url, max_size=10)
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    out: list[figures.Figure] = []
    async with (
        Worker(client, task_queue=BASELINE_TASK_QUEUE, workflows=WORKFLOWS, activities=ACTIVITIES),
        aiohttp.ClientSession(base_url=stack.api_url, headers=headers) as session,
    ):
        api = figures.Api(session)
        print("bench: step overhead …", flush=True)
        ours, regular, local = await figures.step_overhead(api, client, sizes.overhead_runs)
        out.append(
            figures.Figure(
                "step_overhead_vs_regular",
                ours * 1000,
                regular * 1000,
                "ms",
                "ratio <= 1.5",
                ours <= 1.5 * regular,
            )
        )
        out.append(
            figures.Figure(
                "step_overhead_vs_local",
                ours * 1000,
                local * 1000,
                "ms",
                "ratio <= 1.5",
                ours <= 1.5 * local,
            )
        )
        print("bench: launch rate …", flush=True)
        (rate, p99), (base_rate, base_p99) = await figures.launch_rate(
            api, client, sizes.launch_seconds, sizes.launch_concurrency
        )
        out.append(figures.Figure("launch_per_s", rate, base_rate, "1/s", ">= 200", rate >= 200))
        out.append(figures.Figure("launch_p99_ms", p99, base_p99, "ms", "<= 100", p99 <= 100))
        print(f"bench: event routing with {sizes.waiting_runs} runs waiting …", flush=True)
        (ev_rate, ev_p50), (base_ev_rate, base_ev_p50) = await figures.event_routing(
            api,
            client,
            pool,
            stack.nats_url,
            stack.tenant_id,
            sizes.waiting_runs,
            sizes.events,
            sizes.event_rate_cap,
        )
        out.append(
            figures.Figure(
                "events_routed_per_s", ev_rate, base_ev_rate, "1/s", ">= 500", ev_rate >= 500
            )
        )
        out.append(
            figures.Figure("event_resume_p50_ms", ev_p50, base_ev_p50, "ms", "<= 50", ev_p50 <= 50)
        )
        print(f"bench: sweeping {sizes.expired_rows} expired rows under a writer …", flush=True)
        sweep_p99, base_p99w = await figures.sweep_under_write(
            pool, sizes.expired_rows, sizes.writer_baseline_s
        )
        out.append(
            figures.Figure(
                "sweep_writer_p99_ms", sweep_p99, base_p99w, "ms", "<= 20", sweep_p99 <= 20
            )
        )
    await pool.close()
    return out


def render(rows: list[figures.Figure]) -> str:
    header = (
        f"{'figure':<26} {'ours':>10} {'baseline':>10} {'unit':>5} {'ratio':>7}  {'target':<13} ok"
    )
    lines = [header, "-" * len(header)]
    for f in rows:
        lines.append(
            f"{f.name:<26} {f.ours:>10.2f} {f.baseline:>10.2f} {f.unit:>5} {f.ratio:>7.2f}  "
            f"{f.target:<13} {'yes' if f.ok else 'NO'}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="stepwise-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (harness check only)")
    parser.add_argument("--out", default=os.environ.get("BENCH_OUT", ".stepwise/bench.json"))
    parser.add_argument(
        "--pg-admin-url",
        default=os.environ.get(
            "STEPWISE_BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="a Postgres URL with CREATE DATABASE rights (a fresh database is made and dropped)",
    )
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    name = f"stepwise_bench_{uuid.uuid4().hex[:10]}"
    database_url = f"{args.pg_admin_url.rpartition('/')[0]}/{name}"
    asyncio.run(_admin(args.pg_admin_url, f'CREATE DATABASE "{name}"'))
    home = Path(tempfile.mkdtemp(prefix="stepwise-bench-"))
    env = {"STEPWISE_SWEEP_EXPIRY_INTERVAL_S": "1", "STEPWISE_LOG_LEVEL": "WARNING"}
    stack = Stack(home, database_url=database_url, extra_env=env, tenant_name="bench")
    try:
        print(f"bench: starting the stack under {home} …", flush=True)
        stack.start()
        rows = asyncio.run(measure(stack, sizes))
    finally:
        stack.stop()
        asyncio.run(_admin(args.pg_admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print(render(rows))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(
        msgspec.json.format(msgspec.json.encode({"figures": [r.as_json() for r in rows]}))
    )
    print(f"bench: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
