"""The run state's limits: an assignment that takes it past 10 MiB, nests too deep or holds a NUL
fails the step that wrote it with a ValidationError, and the stored state keeps what it had."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest
from stepwise_worker.workflow.scopes import MAX_RUN_STATE_BYTES
from temporalio.client import Client
from temporalio.worker import Worker

from .runs import outcome, run_definition, run_row, step_rows

CHUNK = 250_000  # under the expression result cap of 256 KiB


def _assign(step_id: str, target: str, source: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "transform.assign",
        "config": {"assign": {target: {"$expr": source}}},
    }


async def _run(pool: asyncpg.Pool, client: Client, tenant_id: str, steps: list[Any]) -> Any:
    """Runs `steps` in a tryCatch, so the run succeeds and stores the state it kept."""
    caught = {"id": "tc", "type": "control.tryCatch", "captureErrorAs": "failure",
              "try": steps, "catch": []}  # fmt: skip
    run_id, handle = await run_definition(pool, client, tenant_id, {"name": "s", "steps": [caught]})
    assert await outcome(handle, timeout_s=60) == "completed"
    row = await run_row(pool, run_id)
    leaves = [s for s in await step_rows(pool, run_id) if s["step_type"] == "transform.assign"]
    return row["result_json"], leaves


async def test_state_past_10_mib_fails_the_step_that_grew_it(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    count = MAX_RUN_STATE_BYTES // CHUNK + 2
    steps = [_assign(f"a{i}", f"vars.v{i}", f"$pad('', {CHUNK}, 'x')") for i in range(count)]
    result, steps_done = await _run(pool, temporal_client, tenant_id, steps)
    error = result["vars"]["failure"]
    assert (error["category"], error["code"]) == ("ValidationError", "RUN_STATE_TOO_LARGE")
    failed = [s for s in steps_done if s["status"] == "FAILED"]
    assert len(failed) == 1 and len(steps_done) < count
    assert error["nodePath"] == failed[0]["step_path"]
    assert len(msgspec.json.encode(result)) <= MAX_RUN_STATE_BYTES, "the state it had before"
    assert f"v{len(steps_done) - 1}" not in result["vars"]
    assert f"v{len(steps_done) - 2}" in result["vars"]


@pytest.mark.parametrize(
    ("source", "category", "code"),
    [
        # the expression itself refuses to build a result deeper than any JSON input may be
        (
            '$reduce([1..70], function($a, $v) { {"a": $a} }, {})',
            "ExpressionError",
            "EXPRESSION_FAILED",
        ),
        ('"a\\u0000b"', "ValidationError", "INVALID_INPUT"),
    ],
)
async def test_an_assignment_nul_or_too_deep_is_a_validation_error(
    worker: Worker,
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant_id: str,
    source: str,
    category: str,
    code: str,
) -> None:
    result, steps_done = await _run(
        pool, temporal_client, tenant_id, [_assign("a", "vars.x", source)]
    )
    failure = result["vars"]["failure"]
    assert (failure["category"], failure["code"]) == (category, code)
    assert [(s["attempt"], s["status"]) for s in steps_done] == [(1, "FAILED")]
    assert "x" not in result["vars"]


async def test_action_input_built_2000_deep_fails_the_step_not_the_workflow_task(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    deep = '$reduce([1..2000], function($a, $v) { {"a": $a} }, {})'
    call = {"id": "c", "type": "action.call",
            "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": {"$expr": deep}}}}  # fmt: skip
    caught = {"id": "tc", "type": "control.tryCatch", "captureErrorAs": "failure",
              "try": [call], "catch": []}  # fmt: skip
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "s", "steps": [caught]}
    )
    assert await outcome(handle, timeout_s=60) == "completed"
    failure = (await run_row(pool, run_id))["result_json"]["vars"]["failure"]
    # refused by the expression sandbox, which never builds a result deeper than 64 levels
    assert (failure["category"], failure["code"]) == ("ExpressionError", "EXPRESSION_FAILED")
    assert "nested deeper than 64" in failure["message"]
    invocations = await pool.fetchval(
        "SELECT count(*) FROM workflow_action_invocations WHERE run_id = $1::uuid", run_id
    )
    assert invocations == 0
