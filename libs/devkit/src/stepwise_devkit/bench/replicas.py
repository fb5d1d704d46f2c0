"""`python -m stepwise_devkit.bench.replicas`: are 2 API / 2 router replicas not slower than 1?

For each replica count: a fresh stack (the same `Stack` as `make run`, one process of every other
service) on a fresh database of the machine's Postgres.

- `--part api`: launches/s of a one-step `state.set` definition from `--concurrency` closed-loop
  clients for `--seconds`, each launch sent to the next API replica in turn (a round-robin
  balancer; one HTTP session per replica), and the p50/p99 latency of those launches. A short
  warm-up on every replica comes first; the launched runs drain before the stack stops.
- `--part router`: `--waiting` runs parked on `event.wait`, then a burst of `--burst` events over
  NATS; events routed/s from the first publish to the router's `processed_at` of the last event
  that signalled its run (the `events_routed_per_s` figure of `make bench`).

Every process shares this machine's cores, so on a small machine the ratios say whether a second
replica costs more (one more process competing for the CPU) than it brings; they are not a
capacity figure for a cluster, where each replica brings its own CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg

from stepwise_devkit.bench.figures import (
    closed_loop,
    drained,
    note,
    park_runs,
    percentile,
    route_burst,
)
from stepwise_devkit.scratch_database import add_pg_admin_url, scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import EventPublisher, StackApi

PARTS = ("api", "router")
# the services' own logging at INFO costs CPU on every launch; `make bench` runs them at WARNING too
STACK_ENV = {"STEPWISE_LOG_LEVEL": "WARNING"}


@dataclass(frozen=True, slots=True)
class ApiTry:
    per_s: float
    p50_ms: float
    p99_ms: float
    served: tuple[int, ...]  # launches each replica answered, in replica order


@contextlib.contextmanager
def _stack(pg_admin_url: str, replicas: dict[str, int]) -> Iterator[Stack]:
    with (
        tempfile.TemporaryDirectory(prefix="stepwise-replicas-") as home,
        scratch_database(pg_admin_url, "stepwise_bench") as database_url,
        Stack(
            Path(home), database_url=database_url, replicas=replicas, extra_env=STACK_ENV
        ) as stack,
    ):
        yield stack


def _headers(stack: Stack) -> dict[str, str]:
    return {"Authorization": f"Bearer {stack.api_key}"}


async def _launches(stack: Stack, seconds: float, concurrency: int) -> ApiTry:
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    assert pool is not None
    try:
        async with contextlib.AsyncExitStack() as sessions:
            apis = [
                StackApi(
                    await sessions.enter_async_context(
                        aiohttp.ClientSession(base_url=url, headers=_headers(stack))
                    )
                )
                for url in stack.service_urls("api")
            ]
            definition = {
                "name": f"replicas-launch-{uuid.uuid4().hex[:6]}",
                "steps": [{"id": "s", "type": "state.set", "config": {"state": "x"}}],
            }
            workflow_id = await apis[0].publish_definition(definition)
            served = [0] * len(apis)
            turn = itertools.count()

            async def launch() -> None:
                replica = next(turn) % len(apis)
                await apis[replica].launch(workflow_id, {})
                served[replica] += 1

            # warm-up: every replica's first launches (auth cache, pools, Temporal connection)
            await asyncio.gather(*(launch() for _ in range(4 * len(apis))))
            await drained(pool, workflow_id, 60)
            served[:] = [0] * len(apis)
            per_s, latencies, _ = await closed_loop(launch, seconds, concurrency)
            await drained(pool, workflow_id, 60 + per_s * seconds / 5)
    finally:
        await pool.close()
    return ApiTry(
        per_s=per_s,
        p50_ms=percentile(latencies, 0.5) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        served=tuple(served),
    )


async def _routing(stack: Stack, waiting: int, burst: int) -> float:
    pool = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=2)
    assert pool is not None
    publisher = await EventPublisher.connect(stack.nats_url, stack.tenant_id)
    try:
        async with aiohttp.ClientSession(base_url=stack.api_url, headers=_headers(stack)) as s:
            parked = await park_runs(StackApi(s), pool, waiting)
        return await route_burst(pool, publisher, parked, parked.keys[:burst])
    finally:
        await publisher.close()
        await pool.close()


def _compare(
    repeat: int, counts: list[int], header: str, measure: Callable[[int], tuple[float, str]]
) -> None:
    """`repeat` rounds of `measure(count)` for every count (→ the figure and its table cell),
    then the markdown table: each try's cell and the best figure against the first count's."""
    shown: dict[int, list[str]] = {}
    best: dict[int, float] = {}
    for _ in range(repeat):
        for count in counts:
            figure, cell = measure(count)
            shown.setdefault(count, []).append(cell)
            best[count] = max(best.get(count, 0.0), figure)
    lines = ["", f"{header} best vs {counts[0]} |", "|---|---|---|"]
    for count in counts:
        ratio = best[count] / best[counts[0]]
        lines.append(f"| {count} | {', '.join(shown[count])} | {ratio:.2f} |")
    print("\n".join(lines) + "\n", flush=True)


def _api_part(args: argparse.Namespace, counts: list[int]) -> None:
    def measure(count: int) -> tuple[float, str]:
        with _stack(args.pg_admin_url, {"api": count}) as stack:
            found = asyncio.run(_launches(stack, args.seconds, args.concurrency))
        print(
            f"bench: {count} API replica(s): {found.per_s:.1f} launches/s,"
            f" p50 {found.p50_ms:.0f} ms, p99 {found.p99_ms:.0f} ms",
            flush=True,
        )
        note(f"launches answered per replica: {', '.join(map(str, found.served))}")
        return found.per_s, f"{found.per_s:.1f} ({found.p50_ms:.0f} / {found.p99_ms:.0f} ms)"

    header = (
        f"| API replicas | launches/s, {args.concurrency} clients for {args.seconds:g} s"
        " (p50 / p99), each try |"
    )
    _compare(args.repeat, counts, header, measure)


def _router_part(args: argparse.Namespace, counts: list[int]) -> None:
    def measure(count: int) -> tuple[float, str]:
        with _stack(args.pg_admin_url, {"event-router": count}) as stack:
            per_s = asyncio.run(_routing(stack, args.waiting, args.burst))
        print(f"bench: {count} router replica(s): {per_s:.1f} events routed/s", flush=True)
        return per_s, f"{per_s:.1f}"

    header = (
        f"| router replicas | events routed/s, burst of {args.burst} with {args.waiting} runs"
        " waiting, each try |"
    )
    _compare(args.repeat, counts, header, measure)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m stepwise_devkit.bench.replicas")
    parser.add_argument("--part", choices=PARTS, action="append", help="default: both")
    parser.add_argument("--counts", default="1,2", help="replica counts to compare")
    parser.add_argument("--repeat", type=int, default=2, help="measurements per replica count")
    parser.add_argument("--seconds", type=float, default=10, help="api: seconds of launches")
    parser.add_argument("--concurrency", type=int, default=16, help="api: closed-loop clients")
    parser.add_argument("--waiting", type=int, default=2_000, help="router: runs parked")
    parser.add_argument("--burst", type=int, default=2_000, help="router: events published")
    add_pg_admin_url(parser)
    args = parser.parse_args()
    if args.burst > args.waiting:
        parser.error("--burst: at most --waiting events (one per parked run)")
    counts = [int(part) for part in args.counts.split(",")]
    parts = args.part or PARTS
    if "api" in parts:
        _api_part(args, counts)
    if "router" in parts:
        _router_part(args, counts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
