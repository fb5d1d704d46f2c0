"""`expression_isolation`: one tenant's hostile expressions against another tenant's latency.

Tenant B's p50 launch → SUCCEEDED of a one-step run while tenant A has hostile runs in flight,
divided by the same p50 with nothing else running (the baseline, measured in the same run on the
same stack). Every hostile run must end FAILED with an `ExpressionError`.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
from stepwise_cli.admin_operations import create_tenant
from temporalio.client import Client

from stepwise_devkit.bench.run_phases import RunPhases, TimedRuns, run_phases
from stepwise_devkit.stack_client import StackApi

# Each fails its run with an ExpressionError: refused from its size up front, or stopped by the
# counted work budget. Shared with tests/e2e/test_expression_isolation.py.
HOSTILE_EXPRESSIONS = (
    "$sum([1..9999999])",
    "$count($distinct([1..200000]))",
    '$length($pad("", 50000000, "x"))',
    "$count($map([1..3000], function($i) {[1..3000]}))",
    "($f := function($n){$n > 0 ? $f($n-1) + $f($n-1) : 1}; $f(40))",
    '$string($reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}))',
    '$reduce([1..500], function($acc, $v){ {"a": $acc} }, {})',
    '$count($split($pad("", 200000, "x"), ""))',
)


def one_step_definition(name: str, expr: str) -> dict[str, Any]:
    """`core.echo` of one expression, saved as `vars.out`."""
    return {
        "name": name,
        "steps": [
            {
                "id": "compute",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$expr": expr}},
                    "saveAs": "vars.out",
                },
            }
        ],
    }


async def run_latencies(
    api: StackApi,
    pool: asyncpg.Pool,
    workflow_id: str,
    n: int,
    client: Client | None = None,
) -> TimedRuns:
    """`n` runs of the workflow one after another; each one's launch → SUCCEEDED in seconds.

    The end is the run row's own `completed_at` (written by the worker, on this machine's clock),
    not the moment a poll saw it: polls every 0.2 s would round a 0.1 s run up to 0.25 s and make
    the ratio a count of polls. With a `client`, each run's phases too."""
    latencies = []
    phases = []
    for i in range(n):
        sent = time.time()
        run_id = await api.launch(workflow_id, {"i": i})
        launch_s = time.time() - sent
        [row] = await _wait_ended(pool, [run_id], timeout_s=120)
        if row["status"] != "SUCCEEDED":
            raise RuntimeError(f"benign run {run_id} ended {row['status']}: {row['error_json']}")
        latencies.append(row["completed_at"].timestamp() - sent)
        if client is not None:
            phases.append(await run_phases(client, run_id, launch_s))
    return TimedRuns(latencies=latencies, phases=phases)


_ENDED = (
    "SELECT run_id, status, error_json, started_at, completed_at FROM workflow_runs"
    " WHERE run_id = ANY($1::uuid[]) AND status IN ('SUCCEEDED', 'FAILED', 'CANCELED')"
)


async def _wait_ended(
    pool: asyncpg.Pool, run_ids: list[str], timeout_s: float
) -> list[asyncpg.Record]:
    deadline = time.monotonic() + timeout_s
    while True:
        rows = await pool.fetch(_ENDED, run_ids)
        if len(rows) == len(run_ids):
            return list(rows)
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(run_ids) - len(rows)} of {len(run_ids)} runs still running")
        await asyncio.sleep(0.02)


async def _keep_in_flight(
    api: StackApi,
    pool: asyncpg.Pool,
    workflow_ids: list[str],
    count: int,
    stop: asyncio.Event,
    launched: list[str],
) -> None:
    """Keeps `count` runs in flight (round robin over `workflow_ids`) until `stop`: one watcher
    query every 50 ms replaces each run that ended."""
    next_index = 0

    async def launch(n: int) -> None:
        nonlocal next_index
        ids = [workflow_ids[(next_index + i) % len(workflow_ids)] for i in range(n)]
        next_index += n
        launched.extend(await asyncio.gather(*(api.launch(w, {}) for w in ids)))

    await launch(count)
    ended: set[str] = set()
    while not stop.is_set():
        rows = await pool.fetch(_ENDED, [r for r in launched if r not in ended])
        ended.update(str(r["run_id"]) for r in rows)
        if rows:
            await launch(len(rows))
        await asyncio.sleep(0.05)


async def runs_beside(
    api_a: StackApi,
    api_b: StackApi,
    pool: asyncpg.Pool,
    a_workflows: list[str],
    b_workflow: str,
    in_flight: int,
    samples: int,
    client: Client | None = None,
) -> tuple[TimedRuns, list[asyncpg.Record]]:
    """B's runs while A keeps `in_flight` runs in flight; A's runs, once all ended."""
    stop = asyncio.Event()
    launched: list[str] = []
    keeper = asyncio.create_task(
        _keep_in_flight(api_a, pool, a_workflows, in_flight, stop, launched)
    )
    try:
        await asyncio.sleep(0.5)  # A's first runs launched and under way, not just queued
        timed = await run_latencies(api_b, pool, b_workflow, samples, client)
    finally:
        stop.set()
        await keeper
    return timed, await _wait_ended(pool, launched, timeout_s=120)


@dataclass(frozen=True, slots=True)
class Isolation:
    loaded_ms: float  # B's p50 launch → SUCCEEDED with A's hostile runs in flight
    idle_ms: float  # the same with none
    benign_ms: float  # the same with as many *benign* runs of A in flight (the load's own cost)
    hostile_runs: int  # A's hostile runs launched in all, every one FAILED with ExpressionError
    slowest_failure_s: float  # the slowest hostile run's start → FAILED (the run's own timestamps)
    # where B's time went in each measurement (empty without a client)
    idle_phases: list[RunPhases] = field(default_factory=list)
    loaded_phases: list[RunPhases] = field(default_factory=list)
    benign_phases: list[RunPhases] = field(default_factory=list)


async def expression_isolation(
    api_a: StackApi,
    pool: asyncpg.Pool,
    api_url: str,
    hostile_runs: int,
    samples: int,
    client: Client | None = None,
) -> Isolation:
    """Tenant B's one-step runs, one after another: alone, while tenant A keeps `hostile_runs`
    hostile runs in flight (each replaced as soon as it ends), and while A keeps as many benign
    runs in flight. Raises unless every hostile run ended FAILED with an `ExpressionError`. With
    a Temporal `client`, where B's time went in each (`run_phases.py`)."""
    _, key = await create_tenant(pool, f"bench-b-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession(
        base_url=api_url, headers={"Authorization": f"Bearer {key}"}
    ) as session:
        api_b = StackApi(session)
        benign = await api_b.publish_definition(
            one_step_definition(f"benign-{uuid.uuid4().hex[:6]}", "payload.i * 2")
        )
        await run_latencies(api_b, pool, benign, 3)  # warm caches
        idle = await run_latencies(api_b, pool, benign, samples, client)
        hostile_ids = [
            await api_a.publish_definition(
                one_step_definition(f"hostile-{i}-{uuid.uuid4().hex[:6]}", expr)
            )
            for i, expr in enumerate(HOSTILE_EXPRESSIONS)
        ]
        loaded, hostile = await runs_beside(
            api_a, api_b, pool, hostile_ids, benign, hostile_runs, samples, client
        )
        for row in hostile:
            error = row["error_json"]
            if isinstance(error, str):  # a pool without a jsonb codec
                error = json.loads(error)
            category = (error or {}).get("category")
            if row["status"] != "FAILED" or category != "ExpressionError":
                raise RuntimeError(
                    f"hostile run {row['run_id']} ended {row['status']} ({category})"
                )
        a_benign = await api_a.publish_definition(
            one_step_definition(f"a-benign-{uuid.uuid4().hex[:6]}", "$sum([1..100])")
        )
        beside_benign, _ = await runs_beside(
            api_a, api_b, pool, [a_benign], benign, hostile_runs, samples, client
        )
    slowest = max((r["completed_at"] - r["started_at"]).total_seconds() for r in hostile)
    return Isolation(
        loaded_ms=statistics.median(loaded.latencies) * 1000,
        idle_ms=statistics.median(idle.latencies) * 1000,
        benign_ms=statistics.median(beside_benign.latencies) * 1000,
        hostile_runs=len(hostile),
        slowest_failure_s=slowest,
        idle_phases=idle.phases,
        loaded_phases=loaded.phases,
        benign_phases=beside_benign.phases,
    )
