"""DSL retry policy: attempts, backoff timers, retryOn, onError continue (SPEC §3)."""

from __future__ import annotations

import itertools
import random
import uuid
from typing import Any

import asyncpg
from stepwise_contract.dsl import RetryPolicy
from stepwise_worker.workflow.retry import backoff_ms, should_retry
from temporalio.client import Client
from temporalio.worker import Worker

from .runs import (
    run_steps,
    step_rows,
)


def failing(category: str = "ActionError", **step: Any) -> dict[str, Any]:
    return {
        "id": "f",
        "type": "action.call",
        "config": {
            "actionId": "core.fail",
            "version": 1,
            "inputMapping": {"message": "nope", "category": category},
        },
        **step,
    }


async def invocations(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM workflow_action_invocations WHERE run_id = $1 ORDER BY attempt",
            uuid.UUID(run_id),
        )
    )


def test_backoff_schedule() -> None:
    policy = RetryPolicy(max_attempts=5, backoff_ms=100, backoff_multiplier=3, jitter=False)
    assert [backoff_ms(policy, a, random.random) for a in (1, 2, 3)] == [100, 300, 900]
    capped = RetryPolicy(
        max_attempts=5, backoff_ms=100, backoff_multiplier=3, max_delay_ms=250, jitter=False
    )
    assert [backoff_ms(capped, a, random.random) for a in (1, 2, 3)] == [100, 250, 250]
    jittered = RetryPolicy(max_attempts=5, backoff_ms=1000)
    draws = [backoff_ms(jittered, 1, random.Random(seed).random) for seed in range(200)]
    assert min(draws) >= 800 and max(draws) <= 1200 and len(set(draws)) > 50
    # the same seeded stream gives the same delays (the workflow's random is replayed)
    assert backoff_ms(jittered, 2, random.Random(7).random) == backoff_ms(
        jittered, 2, random.Random(7).random
    )
    assert backoff_ms(RetryPolicy(backoff_ms=1000, max_delay_ms=900), 1, lambda: 1.0) == 900


def test_should_retry() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert should_retry(policy, 1, "ActionError") and should_retry(policy, 2, "TransientError")
    assert not should_retry(policy, 3, "ActionError")
    assert not should_retry(policy, 1, "ValidationError")  # deterministic: retrying cannot help
    assert not should_retry(None, 1, "TransientError")
    only = RetryPolicy(max_attempts=3, retry_on=["TransientError"])
    assert should_retry(only, 1, "TransientError") and not should_retry(only, 1, "ActionError")
    assert should_retry(
        RetryPolicy(max_attempts=2, retry_on=["ValidationError"]), 1, "ValidationError"
    )


async def test_retry_then_on_error_continue(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        failing(
            retry={"maxAttempts": 3, "backoffMs": 10, "jitter": False},
            onError={"policy": "continue"},
        ),
        {
            "id": "next",
            "type": "transform.assign",
            "config": {"assign": {"vars.seen": {"$expr": "error.message & '/' & error.category"}}},
        },
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert row["status"] == "SUCCEEDED" and row["error_json"] is None
    assert row["result_json"]["vars"]["seen"] == "nope/ActionError"
    rows = await step_rows(pool, run_id)
    assert [(r["step_path"], r["attempt"], r["status"]) for r in rows] == [
        ("root.steps[0]", 1, "FAILED"),
        ("root.steps[0]", 2, "FAILED"),
        ("root.steps[0]", 3, "FAILED"),
        ("root.steps[1]", 1, "SUCCEEDED"),
    ]
    assert all(r["error_json"]["message"] == "nope" for r in rows[:3])
    ledger = await invocations(pool, run_id)
    assert [(i["attempt"], i["status"]) for i in ledger] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "FAILED"),
    ]
    assert len({i["idempotency_key"] for i in ledger}) == 1, (
        "a retry is a new attempt under the same key"
    )
    assert ledger[0]["error_json"]["category"] == "ActionError"


async def test_retry_until_success(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {
            "id": "flaky",
            "type": "action.call",
            "retry": {"maxAttempts": 4, "backoffMs": 10},
            "config": {
                "actionId": "test.flaky",
                "version": 1,
                "inputMapping": {"key": tenant_id, "failures": 2},
                "saveAs": "vars.out",
            },
        }
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"]["out"] == {"calls": 3}
    assert [(r["attempt"], r["status"]) for r in await step_rows(pool, run_id)] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "SUCCEEDED"),
    ]
    assert [(i["attempt"], i["status"]) for i in await invocations(pool, run_id)] == [
        (1, "FAILED"),
        (2, "FAILED"),
        (3, "SUCCEEDED"),
    ]


async def test_retry_on_filters_categories(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    only_transient = [
        failing(retry={"maxAttempts": 3, "backoffMs": 10, "retryOn": ["TransientError"]})
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, only_transient)
    assert closed == "failed"
    assert row["error_json"]["category"] == "ActionError"
    assert len(await step_rows(pool, run_id)) == 1

    validation = [failing("ValidationError", retry={"maxAttempts": 3, "backoffMs": 10})]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, validation)
    assert closed == "failed" and row["error_json"]["category"] == "ValidationError"
    assert len(await step_rows(pool, run_id)) == 1

    transient = [
        failing(
            "TransientError",
            retry={"maxAttempts": 2, "backoffMs": 10, "retryOn": ["TransientError"]},
        )
    ]
    run_id, closed, row = await run_steps(pool, temporal_client, tenant_id, transient)
    assert closed == "failed" and row["error_json"]["category"] == "TransientError"
    assert row["error_json"]["nodePath"] == "root.steps[0]"
    assert len(await step_rows(pool, run_id)) == 2


async def test_retry_backoff_is_respected(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # 400 ms then 800 ms (multiplier 2, no jitter); the third delay would be 1600 but is capped
    steps = [
        failing(
            retry={
                "maxAttempts": 4,
                "backoffMs": 400,
                "backoffMultiplier": 2,
                "maxDelayMs": 900,
                "jitter": False,
            }
        )
    ]
    run_id, closed, _row = await run_steps(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    rows = await step_rows(pool, run_id)
    assert [r["attempt"] for r in rows] == [1, 2, 3, 4]
    gaps = [
        (b["started_at"] - a["completed_at"]).total_seconds() for a, b in itertools.pairwise(rows)
    ]
    assert gaps[0] >= 0.39 and gaps[1] >= 0.79 and gaps[2] >= 0.89, gaps
    # durable timers on the dev server fire late by up to ~1 s, never early; the cap holds
    # uncapped, the third delay would be 1600 ms; timers fire late (never early), so < 1.6 s
    # proves the 900 ms cap
    assert gaps[2] < 1.6, gaps
    # the failed attempt's row was written before the backoff timer, not after it
    assert all(r["completed_at"] < b["started_at"] for r, b in itertools.pairwise(rows))
