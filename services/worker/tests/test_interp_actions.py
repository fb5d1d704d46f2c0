"""Action calls: the invocation ledger, secrets kept out of history, the size ceiling, plugins.

Large values (the claim-check codec): test_large_payloads.py."""

from __future__ import annotations

import collections
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from stepwise_contract.platform.secrets import encrypt_secret
from stepwise_worker.messages import EXECUTE_ACTION, ActionRequest
from stepwise_worker.worker import WorkerOptions
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    Worker,
)

from .builders import action
from .runs import (
    Probe,
    ensure_tenant,
    outcome,
    probe_actions,
    run_definition,
    run_row,
    running_worker,
    step_rows,
)

PROBE = Probe()
SECRET_KEY = "test-secret-key"
LOSE_PREFIX = "lose-completion-"


class LoseFirstCompletion(Interceptor):
    """Simulates a worker killed after the action finished but before Temporal got the result:
    the first attempt of an action call whose key starts with `LOSE_PREFIX` runs to completion
    (handler and ledger included), then the activity fails as if the worker had vanished."""

    def __init__(self) -> None:
        self.lost: collections.Counter[str] = collections.Counter()

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        owner = self

        class Inbound(ActivityInboundInterceptor):
            async def execute_activity(self, input: ExecuteActivityInput) -> Any:
                result = await super().execute_activity(input)
                info = activity.info()
                request = input.args[0] if input.args else None
                if (
                    info.activity_type == EXECUTE_ACTION
                    and isinstance(request, ActionRequest)
                    and str(request.input.get("key", "")).startswith(LOSE_PREFIX)
                    and info.attempt == 1
                ):
                    owner.lost[request.input["key"]] += 1
                    raise RuntimeError("worker lost before the completion reached Temporal")
                return result

        return Inbound(next)


LOSER = LoseFirstCompletion()


@pytest.fixture(scope="module")
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[Worker]:
    async with running_worker(
        temporal_client,
        pool,
        extra_actions=probe_actions(PROBE),
        options=WorkerOptions(secret_key=SECRET_KEY),
        interceptors=[LOSER],
    ) as w:
        yield w


async def run(
    pool: asyncpg.Pool,
    client: Client,
    tenant: str,
    steps: list[dict[str, Any]],
    payload: Any = None,
) -> tuple[str, str, asyncpg.Record, WorkflowHandle[Any, Any]]:
    run_id, handle = await run_definition(
        pool, client, tenant, {"name": "a", "steps": steps}, payload
    )
    closed = await outcome(handle)
    return run_id, closed, await run_row(pool, run_id), handle


async def ledger(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM workflow_action_invocations WHERE run_id = $1 ORDER BY created_at",
            uuid.UUID(run_id),
        )
    )


async def history_bytes(handle: WorkflowHandle[Any, Any]) -> bytes:
    """The raw history: payload bodies appear verbatim in the protobuf encoding."""
    history = await handle.fetch_history()
    return b"".join(e.SerializeToString() for e in history.events) + history.to_json().encode()


async def test_succeeded_invocation_is_returned_not_rerun(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    key = f"explicit-{tenant_id}"
    await ensure_tenant(pool, tenant_id)
    # an earlier execution (another run, or this one before a crash) already succeeded
    await pool.execute(
        "INSERT INTO workflow_action_invocations (invocation_id, tenant, run_id, step_path, action_id,"
        " action_version, idempotency_key, attempt, status, input_json, output_json)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'test.count', 1, $4, 1, 'SUCCEEDED', '{}', $5)",
        uuid.uuid4(), uuid.UUID(tenant_id), uuid.uuid4(), key, {"calls": 99},
    )  # fmt: skip
    steps = [
        action(
            "c",
            "test.count",
            {"key": key},
            "vars.out",
            idempotencyKey={"$expr": "'explicit-' & system.tenantId"},
        )
    ]
    run_id, closed, row, _h = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"]["out"] == {"calls": 99}
    assert PROBE.calls[key] == 0, "the handler never ran"
    assert await ledger(pool, run_id) == []


async def test_lost_completion_is_not_executed_again(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    for action_id in ("test.countRemote", "test.count"):  # regular and local activity
        key = f"{LOSE_PREFIX}{action_id}-{tenant_id}"
        run_id, closed, row, _handle = await run(
            pool, temporal_client, tenant_id, [action("c", action_id, {"key": key}, "vars.out")]
        )
        assert closed == "completed", row["error_json"]
        assert LOSER.lost[key] == 1, "the first completion was lost"
        assert PROBE.calls[key] == 1, f"{action_id} executed once, not again on the activity retry"
        assert row["result_json"]["vars"]["out"] == {"calls": 1}
        rows = await ledger(pool, run_id)
        assert [(r["attempt"], r["status"]) for r in rows] == [(1, "SUCCEEDED")]


async def test_execute_action_twice_with_the_same_key(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    """The activity itself, called twice (as after a worker crash): one execution, same output."""
    from stepwise_worker.actions.base import ActionSettings
    from stepwise_worker.actions.registry import ActionRegistry
    from stepwise_worker.activities.action_calls import ActionActivities
    from temporalio.testing import ActivityEnvironment

    await ensure_tenant(pool, tenant_id)
    activities = ActionActivities(
        pool,
        registry=ActionRegistry(probe_actions(PROBE)),
        max_payload_bytes=10 * 1024 * 1024,
        secret_key=SECRET_KEY,
        action_settings=ActionSettings(),
    )
    key = f"twice-{tenant_id}"
    request = ActionRequest(
        tenant_id=tenant_id,
        run_id=str(uuid.uuid4()),
        step_path="root.steps[0]",
        action_id="test.count",
        version=1,
        input={"key": key},
        idempotency_key=f"{tenant_id}:k",
        attempt=1,
    )
    env = ActivityEnvironment()
    first = await env.run(activities.execute_action, request)
    second = await env.run(activities.execute_action, request)
    retry = await env.run(activities.execute_action, msgspec.structs.replace(request, attempt=2))
    assert (first.output, first.replayed) == ({"calls": 1}, False)
    assert (second.output, second.replayed, second.invocation_id) == (
        {"calls": 1},
        True,
        first.invocation_id,
    )
    assert retry.replayed and retry.output == {"calls": 1}
    assert PROBE.calls[key] == 1


async def test_secret_never_reaches_history(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    await ensure_tenant(pool, tenant_id)
    await pool.execute(
        "INSERT INTO tenant_secrets (tenant, name, value_encrypted) VALUES ($1, 'API_TOKEN', $2)",
        uuid.UUID(tenant_id), encrypt_secret(SECRET_KEY, secret),
    )  # fmt: skip
    ref = {"$secret": "API_TOKEN"}
    steps = [
        action("count", "test.count", {"key": ref}, "vars.counted"),
        action("echo", "core.echo", {"value": {"auth": ref, "note": "plain"}}, "vars.echoed"),
        {
            "id": "tc",
            "type": "control.tryCatch",
            "captureErrorAs": "failure",
            "try": [action("fail", "core.fail", {"message": ref})],
            "catch": [],
        },
    ]
    run_id, closed, row, handle = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    assert PROBE.calls[secret] == 1, "the handler received the clear secret"
    raw = await history_bytes(handle)
    assert b"API_TOKEN" in raw, "the history was searched (the ref is there)"
    assert secret.encode() not in raw
    assert row["result_json"]["vars"]["echoed"] == {
        "value": {"auth": "[SECRET:REDACTED]", "note": "plain"}
    }
    assert row["result_json"]["vars"]["failure"]["message"] == "[SECRET:REDACTED]"
    rows = await ledger(pool, run_id)
    assert [r["input_json"] for r in rows] == [
        {"key": "[SECRET:REDACTED]"},
        {"value": {"auth": "[SECRET:REDACTED]", "note": "plain"}},
        {"message": "[SECRET:REDACTED]"},
    ]
    stored = msgspec.json.encode(
        [dict(r) for r in rows] + [dict(r) for r in await step_rows(pool, run_id)] + [dict(row)]
    ).decode()
    assert secret not in stored

    missing = [action("c", "core.echo", {"value": {"$secret": "NOT_SET"}})]
    _run_id, closed, row, _h = await run(pool, temporal_client, tenant_id, missing)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"]["code"]) == (
        "ValidationError",
        "SECRET_NOT_FOUND",
    )


async def test_oversized_output_is_a_validation_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        action(
            "big",
            "test.big",
            {"bytes": 10 * 1024 * 1024 + 1},
            "vars.big",
        )
    ]
    steps[0]["retry"] = {"maxAttempts": 3, "backoffMs": 10}
    run_id, closed, row, _h = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"]["code"]) == (
        "ValidationError",
        "PAYLOAD_TOO_LARGE",
    )
    assert [r["status"] for r in await ledger(pool, run_id)] == ["FAILED"], "not retried"


async def test_plugin_action(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [action("greet", "example.greet", {"name": {"$expr": "payload.who"}}, "vars.greeting")]
    _run_id, closed, row, _h = await run(pool, temporal_client, tenant_id, steps, {"who": "Ada"})
    assert closed == "completed", row["error_json"]
    assert row["result_json"]["vars"]["greeting"] == {
        "message": "Hello, Ada!",
        "tenantId": tenant_id,
    }


# -- hostile input: secret refs as data, derived forms, NUL, depth ------------------------------


async def _set_secret(pool: asyncpg.Pool, tenant_id: str, name: str, value: str) -> None:
    await ensure_tenant(pool, tenant_id)
    await pool.execute(
        "INSERT INTO tenant_secrets (tenant, name, value_encrypted) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant, name) DO UPDATE SET value_encrypted = EXCLUDED.value_encrypted",
        uuid.UUID(tenant_id), name, encrypt_secret(SECRET_KEY, value),
    )  # fmt: skip


async def test_secret_ref_arriving_as_data_is_never_resolved(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    secret = f"probe-{uuid.uuid4().hex}"
    await _set_secret(pool, tenant_id, "PROBE_SECRET", secret)
    steps = [
        # a payload value, an expression's own result, an earlier action's output: all data
        action("p", "core.echo", {"value": {"$expr": "payload.injected"}}, "vars.fromPayload"),
        action("e", "core.echo", {"value": {"$expr": "{'$secret': 'PROBE_SECRET'}"}}, "vars.built"),
        action("o", "core.echo", {"value": {"$expr": "vars.built.value"}}, "vars.fromOutput"),
        action("k", "test.count", {"key": {"$expr": "payload.injected"}}),
    ]
    injected = {"$secret": "PROBE_SECRET"}
    run_id, closed, row, handle = await run(
        pool, temporal_client, tenant_id, steps, {"injected": injected}
    )
    assert closed == "completed", row["error_json"]
    result = row["result_json"]["vars"]
    assert result["fromPayload"] == result["built"] == result["fromOutput"] == {"value": injected}
    assert PROBE.calls[secret] == 0 and PROBE.calls[str(injected)] == 1
    stored = msgspec.json.encode([dict(r) for r in await ledger(pool, run_id)] + [dict(row)])
    assert secret.encode() not in stored
    assert secret.encode() not in await history_bytes(handle)


async def test_derived_forms_of_a_secret_are_scrubbed(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    secret = f"Derived-{uuid.uuid4().hex}"
    await _set_secret(pool, tenant_id, "DERIVED", secret)
    ref = {"$secret": "DERIVED"}
    steps = [
        action("u", "transform.text", {"op": "upper", "value": ref}, "vars.upper"),
        action(
            "s", "transform.text", {"op": "split", "value": ref, "separator": "-"}, "vars.split"
        ),
        action("j", "transform.jsonStringify", {"value": {"k": ref}}, "vars.json"),
    ]
    run_id, closed, row, handle = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "completed", row["error_json"]
    result = row["result_json"]["vars"]
    assert result["upper"] == {"value": "[SECRET:REDACTED]"}
    assert result["split"] == {"value": ["Derived", "[SECRET:REDACTED]"]}
    assert result["json"] == {"text": '{"k":"[SECRET:REDACTED]"}'}
    stored = msgspec.json.encode([dict(r) for r in await ledger(pool, run_id)] + [dict(row)])
    raw = await history_bytes(handle)
    for form in (secret, secret.upper(), secret.split("-")[1]):
        assert form.encode() not in stored and form.encode() not in raw


async def test_nul_in_an_action_input_is_a_validation_error_not_retried(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    # JSONata's "\u0000" escape: the run makes the NUL (a payload cannot carry one)
    nul = {"$expr": '"a\\u0000b"'}
    step = action("pub", "event.publish", {"eventType": "NUL_PROBE", "payload": {"text": nul}})
    steps = [{**step, "retry": {"maxAttempts": 3, "backoffMs": 10}}]
    run_id, closed, row, _handle = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"]["code"]) == (
        "ValidationError",
        "INVALID_INPUT",
    )
    assert await ledger(pool, run_id) == [], "nothing was stored"
    assert [r["attempt"] for r in await step_rows(pool, run_id)] == [1], "no DSL retry"


async def test_action_output_nested_too_deep_is_a_validation_error(
    worker: Worker, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    deep = "[" * 100 + "]" * 100
    steps = [action("parse", "transform.jsonParse", {"text": deep}, "vars.parsed")]
    run_id, closed, row, _handle = await run(pool, temporal_client, tenant_id, steps)
    assert closed == "failed"
    assert (row["error_json"]["category"], row["error_json"]["code"]) == (
        "ValidationError",
        "JSON_TOO_DEEP",
    )
    [invocation] = await ledger(pool, run_id)
    assert invocation["status"] == "FAILED" and invocation["output_json"] is None


def test_an_error_with_a_nul_or_deep_details_is_made_storable() -> None:
    from stepwise_worker.activities.action_calls import _storable

    deep: Any = "x"
    for _ in range(100):
        deep = [deep]
    error = {"category": "ActionError", "message": "body a\u0000b", "code": "HTTP_400",
             "details": {"text": "a\u0000b", "deep": deep}}  # fmt: skip
    assert _storable(error) == {
        "category": "ActionError",
        "message": "body a\\u0000b",
        "code": "HTTP_400",
    }
    plain = {"category": "ActionError", "message": "m", "details": {"status": 400}}
    assert _storable(plain) == plain
