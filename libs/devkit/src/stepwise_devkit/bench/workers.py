"""`python -m stepwise_devkit.bench.workers`: run throughput with 1, 2, 3… worker processes.

For each worker count: a fresh stack (the same `Stack` as `make run`, one API, router and
sweeper, `--workers N` worker processes) on a fresh database of the machine's Postgres; a warm-up,
then `--runs` runs of the 10-step `core.echo` workflow launched 16 at a time; the figure is runs
per second from the first launch to the last run SUCCEEDED. Every process shares this machine's
cores, so on a small machine the ratios say how far more workers help before the CPU (or
Temporal) is the limit; they are not a capacity figure for a cluster.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
import asyncpg

from stepwise_devkit.bench.figures import echo_definition
from stepwise_devkit.scratch_database import add_pg_admin_url, scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import StackApi


async def _finished(pool: asyncpg.Pool, workflow_id: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1 AND status = 'SUCCEEDED'",
            uuid.UUID(workflow_id),
        )
    )


async def _batch(api: StackApi, pool: asyncpg.Pool, workflow_id: str, runs: int) -> float:
    """Seconds from the first launch until `runs` more runs of the workflow have SUCCEEDED."""
    before = await _finished(pool, workflow_id)
    sem = asyncio.Semaphore(16)

    async def one(n: int) -> None:
        async with sem:
            await api.launch(workflow_id, {"n": str(n)})

    started = time.monotonic()
    await asyncio.gather(*(one(n) for n in range(runs)))
    while True:
        if await _finished(pool, workflow_id) >= before + runs:
            return time.monotonic() - started
        await asyncio.sleep(0.1)


async def _measure(stack: Stack, runs: int) -> float:
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with aiohttp.ClientSession(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.api_key}"}
        ) as session:
            api = StackApi(session)
            workflow_id = await api.publish_definition(echo_definition(f"workers-{uuid.uuid4()}"))
            await _batch(api, pool, workflow_id, max(10, runs // 10))  # warm-up
            return runs / await _batch(api, pool, workflow_id, runs)
    finally:
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stepwise_devkit.bench.workers")
    parser.add_argument("--workers", default="1,2,3", help="worker counts to compare")
    parser.add_argument("--runs", type=int, default=300, help="measured runs per worker count")
    parser.add_argument("--repeat", type=int, default=2, help="measurements per worker count")
    add_pg_admin_url(parser)
    args = parser.parse_args()
    counts = [int(part) for part in args.workers.split(",")]
    results: dict[int, list[float]] = {}
    for _ in range(args.repeat):
        for workers in counts:
            with (
                tempfile.TemporaryDirectory(prefix="stepwise-workers-") as home,
                scratch_database(args.pg_admin_url, "stepwise_bench") as database_url,
                Stack(Path(home), database_url=database_url, replicas={"worker": workers}) as stack,
            ):
                rate = asyncio.run(_measure(stack, args.runs))
            results.setdefault(workers, []).append(rate)
            print(f"bench: {workers} worker(s): {rate:.1f} runs/s", flush=True)
    base = max(results[counts[0]])
    print(f"\n| workers | runs/s ({args.runs} 10-step runs, each try) | best vs {counts[0]} |")
    print("|---|---|---|")
    for workers, rates in results.items():
        shown = ", ".join(f"{r:.1f}" for r in rates)
        print(f"| {workers} | {shown} | {max(rates) / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
