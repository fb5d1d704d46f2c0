"""`expression_isolation`: one tenant's hostile expressions against another tenant's latency.

Tenant B's p50 launch → SUCCEEDED of a one-step run while tenant A has hostile runs in flight,
divided by the same p50 with nothing else running (the baseline, measured in the same run on the
same stack). Every hostile run must end FAILED with an `ExpressionError`.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
from stepwise_cli.admin_operations import create_tenant

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


async def run_latencies(api: StackApi, workflow_id: str, n: int) -> list[float]:
    """Launch `n` runs at once; each one's launch → SUCCEEDED in seconds."""

    async def one(i: int) -> float:
        started = time.perf_counter()
        run_id = await api.launch(workflow_id, {"i": i})
        run = await api.wait_run(run_id, timeout_s=120)
        if run["status"] != "SUCCEEDED":
            raise RuntimeError(f"benign run {run_id} ended {run['status']}: {run['error_json']}")
        return time.perf_counter() - started

    return list(await asyncio.gather(*(one(i) for i in range(n))))


@dataclass(frozen=True, slots=True)
class Isolation:
    loaded_ms: float  # B's p50 launch → SUCCEEDED with A's hostile runs in flight
    idle_ms: float  # the same with none
    slowest_failure_s: float  # the slowest hostile run's start → FAILED (the run's own timestamps)


async def expression_isolation(
    api_a: StackApi, pool: asyncpg.Pool, api_url: str, hostile_runs: int, samples: int
) -> Isolation:
    """Tenant B's latency beside tenant A's hostile runs, and how fast those fail."""
    _, key = await create_tenant(pool, f"bench-b-{uuid.uuid4().hex[:6]}")
    async with aiohttp.ClientSession(
        base_url=api_url, headers={"Authorization": f"Bearer {key}"}
    ) as session:
        api_b = StackApi(session)
        benign = await api_b.publish_definition(
            one_step_definition(f"benign-{uuid.uuid4().hex[:6]}", "payload.i * 2")
        )
        await run_latencies(api_b, benign, 2)  # warm caches
        idle = statistics.median(await run_latencies(api_b, benign, samples))
        hostile_ids = [
            await api_a.publish_definition(
                one_step_definition(f"hostile-{i}-{uuid.uuid4().hex[:6]}", expr)
            )
            for i, expr in enumerate(HOSTILE_EXPRESSIONS)
        ]
        launched = await asyncio.gather(
            *(api_a.launch(hostile_ids[i % len(hostile_ids)], {}) for i in range(hostile_runs))
        )
        loaded = statistics.median(await run_latencies(api_b, benign, samples))
        for run_id in launched:
            run = await api_a.wait_run(run_id, timeout_s=120)
            category = (run["error_json"] or {}).get("category")
            if run["status"] != "FAILED" or category != "ExpressionError":
                raise RuntimeError(f"hostile run {run_id} ended {run['status']} ({category})")
    slowest: float = await pool.fetchval(
        "SELECT max(extract(epoch FROM completed_at - started_at)) FROM workflow_runs"
        " WHERE run_id = ANY($1::uuid[])",
        list(launched),
    )
    return Isolation(loaded_ms=loaded * 1000, idle_ms=idle * 1000, slowest_failure_s=slowest)
