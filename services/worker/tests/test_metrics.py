"""Worker metrics after a real run (exact increments on the default registry) and the log context
bound around activities."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import asyncpg
import pytest
import structlog
from prometheus_client import REGISTRY
from stepwise_contract.actions import ActionDeclaration
from stepwise_worker.actions.base import Action, ActionContext, JSONObject
from temporalio.client import Client
from temporalio.worker import Worker

from .builders import assign, fail, time_wait
from .runs import outcome, run_definition, run_row, running_worker, step_rows

PREFIX = "stepwise_worker_"


async def probe_log(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    # logs with no identifiers of its own: they must come from the activity's bound context
    structlog.get_logger("test.metrics").info("metrics_probe_line", note=payload.get("note"))
    return {}


PROBE_LOG = Action(
    declaration=ActionDeclaration(
        id="test.metricsLog", version=1, input_schema={"type": "object"},
        output_schema={"type": "object"}, timeout_s=10.0, local=True,
    ),
    handler=probe_log,
)  # fmt: skip


@pytest.fixture(scope="module")
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    async with running_worker(temporal_client, pool, extra_actions=[PROBE_LOG]) as w:
        yield w


def samples() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every worker sample but histogram buckets and sums (counts are exact, the rest is not)."""
    found: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in REGISTRY.collect():
        for s in family.samples:
            if s.name.startswith(PREFIX) and s.name.endswith(("_total", "_count")):
                found[(s.name, frozenset(s.labels.items()))] = s.value
    return found


def delta(
    before: dict[tuple[str, frozenset[tuple[str, str]]], float],
    after: dict[tuple[str, frozenset[tuple[str, str]]], float],
) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def key(name: str, **labels: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return (PREFIX + name, frozenset(labels.items()))


async def test_a_run_counts_exactly_once(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        {"id": "echo", "type": "action.call",
         "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": 1}}},
        {"id": "tc", "type": "control.tryCatch", "try": [fail("f1")], "catch": [assign("h1", **{"vars.x": 1})]},
        # a category no catalog knows stays out of the label set
        {"id": "tc2", "type": "control.tryCatch", "try": [fail("f2", category="Custom")],
         "catch": [assign("h2", **{"vars.x": 1})]},
        time_wait("now", 0),  # an instant in the past: no wait row
        time_wait("soon", 200),
    ]  # fmt: skip
    before = samples()
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "m", "steps": steps}
    )
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    got = delta(before, samples())

    rows = await step_rows(pool, run_id)
    by_type_status = collections.Counter((r["step_type"], r["status"]) for r in rows)
    by_type = collections.Counter(r["step_type"] for r in rows)
    assert by_type_status == {
        ("action.call", "SUCCEEDED"): 1,
        ("action.call", "FAILED"): 2,
        ("control.tryCatch", "SUCCEEDED"): 2,
        ("transform.assign", "SUCCEEDED"): 2,
        ("time.wait", "SUCCEEDED"): 2,
    }
    expected = {
        key("runs_completed_total", status="SUCCEEDED"): 1.0,
        key("action_duration_seconds_count", action="core.echo@1"): 1.0,
        key("action_duration_seconds_count", action="core.fail@1"): 2.0,
        key("action_failures_total", action="core.fail@1", category="ActionError"): 1.0,
        key("action_failures_total", action="core.fail@1", category="other"): 1.0,
        key("waits_opened_total", type="time"): 1.0,
        key("waits_closed_total", type="time", outcome="resolved"): 1.0,
        **{
            key("steps_total", step_type=t, status=s): float(n)
            for (t, s), n in by_type_status.items()
        },
        **{key("step_duration_seconds_count", step_type=t): float(n) for t, n in by_type.items()},
    }
    assert got == expected


async def test_action_log_lines_carry_the_run(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [{"id": "log", "type": "action.call",
              "config": {"actionId": "test.metricsLog", "version": 1,
                         "inputMapping": {"note": "hi"}}}]  # fmt: skip
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        run_id, handle = await run_definition(
            pool, temporal_client, tenant_id, {"name": "m", "steps": steps}
        )
        assert await outcome(handle) == "completed"
    lines = [line for line in logs if line["event"] == "metrics_probe_line"]
    assert len(lines) == 1
    assert lines[0]["tenant"] == tenant_id
    assert lines[0]["run_id"] == run_id
    assert lines[0]["step_path"] == "root.steps[0]"
    assert lines[0]["note"] == "hi"
