"""`python -m stepwise_devkit.bench.resumes`: what the worker's sticky cache is worth on resumes.

One stack (the same `Stack` as `make run`) on a fresh database of the machine's Postgres. Each
round parks `--waiting` runs on `event.wait` and publishes one event per run at once, twice:

- *cached*: the worker that parked the runs still holds them (its sticky cache is larger than
  the number parked), so each resume is one activation of a run in memory;
- *evicted*: the worker is restarted after parking, so it holds none of them and every resume
  first rebuilds its run by replaying the run's history — what a resume costs once the runs
  waiting outnumber `STEPWISE_WORKER_MAX_CACHED_WORKFLOWS`.

Printed per round: events routed/s (publish → signal delivered) and runs resumed/s (first
publish → the last wait `RESOLVED`).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
from stepwise_contract.platform.db import create_pool

from stepwise_devkit.bench.figures import ParkedRuns, park_runs, route_burst, wait_for
from stepwise_devkit.scratch_database import add_pg_admin_url, scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi


async def _park(stack: Stack, waiting: int) -> ParkedRuns:
    pool = await create_pool(stack.database_url, max_size=4)
    try:
        async with aiohttp.ClientSession(
            base_url=stack.api_url, headers={"Authorization": f"Bearer {stack.api_key}"}
        ) as session:
            return await park_runs(StackApi(session), pool, waiting)
    finally:
        await pool.close()


async def _resume_all(stack: Stack, parked: ParkedRuns) -> tuple[float, float]:
    """(events routed/s, runs resumed/s) for one event per parked run, published at once."""
    pool = await create_pool(stack.database_url, max_size=4)
    publisher = await EventPublisher.connect(stack.nats_url, stack.tenant_id)
    try:
        first = time.time()
        routed = await route_burst(pool, publisher, parked, parked.keys)
        await wait_for(
            lambda: parked.waits(pool, "RESOLVED"),
            len(parked.keys),
            120 + len(parked.keys) / 5,
            "parked runs resumed",
        )
        last: datetime = await pool.fetchval(
            "SELECT max(w.resolved_at) FROM workflow_run_waits w JOIN workflow_runs r"
            " USING (run_id) WHERE r.workflow_id = $1",
            uuid.UUID(parked.workflow_id),
        )
        return routed, len(parked.keys) / max(last.timestamp() - first, 1e-6)
    finally:
        await publisher.close()
        await pool.close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stepwise_devkit.bench.resumes")
    parser.add_argument("--waiting", type=int, default=3_000, help="runs parked per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="rounds (cached, then evicted)")
    add_pg_admin_url(parser)
    args = parser.parse_args()
    results: dict[str, list[tuple[float, float]]] = {"cached": [], "evicted": []}
    with (
        tempfile.TemporaryDirectory(prefix="stepwise-resumes-") as home,
        scratch_database(args.pg_admin_url, "stepwise_bench") as database_url,
        Stack(Path(home), database_url=database_url) as stack,
    ):
        for _ in range(args.repeat):
            for mode in ("cached", "evicted"):
                parked = asyncio.run(_park(stack, args.waiting))
                if mode == "evicted":
                    stack.restart("worker")  # a fresh worker holds none of the parked runs
                routed, resumed = asyncio.run(_resume_all(stack, parked))
                results[mode].append((routed, resumed))
                print(
                    f"bench: {mode}: {routed:.0f} events routed/s, {resumed:.0f} runs resumed/s",
                    flush=True,
                )
    print(
        f"\n| {args.waiting} runs parked | events routed/s, each try | runs resumed/s, each try |"
    )
    print("|---|---|---|")
    for mode, tries in results.items():
        routed_s = ", ".join(f"{r:.0f}" for r, _ in tries)
        resumed_s = ", ".join(f"{r:.0f}" for _, r in tries)
        print(f"| {mode} | {routed_s} | {resumed_s} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
