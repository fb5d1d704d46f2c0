"""Seed a published definition, launch runs without the API, read their rows; the in-process
worker and the probe actions.

The API owns publishing; tests of the worker insert the rows it would have written (tenant,
definition, immutable version with its hash) and launch through `stepwise_contract.platform.launch`, the
same code every launcher uses.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg
from stepwise_contract import dsl
from stepwise_contract.actions import ActionDeclaration, action_facts
from stepwise_contract.hashing import definition_hash
from stepwise_contract.names import RUN_COMMANDS, workflow_id_for
from stepwise_contract.payloads import PreloadedRun, RunInput, RunResult
from stepwise_contract.platform.launch import NewRun, insert_run, launch
from stepwise_contract.priority import DEFAULT_FAIRNESS_WEIGHT, DEFAULT_PRIORITY, run_priority
from stepwise_worker.actions.base import Action, ActionContext, ActionFailure, JSONObject
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.worker import WorkerOptions, build_worker
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Interceptor, Worker


async def ensure_tenant(pool: asyncpg.Pool, tenant_id: str, *, name: str = "test") -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        uuid.UUID(tenant_id), name,
    )  # fmt: skip


async def publish_definition(
    pool: asyncpg.Pool, tenant_id: str, definition: dict[str, Any], *, version: int = 1
) -> tuple[str, int, str]:
    """Insert a published definition; returns (workflow_id, version, definition_hash)."""
    await ensure_tenant(pool, tenant_id)
    workflow_id = str(uuid.uuid4())
    body = {**definition, "id": workflow_id, "version": version}
    digest = definition_hash(body)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO workflow_definitions (workflow_id, tenant, name, draft_definition,"
            " status, latest_published_version) VALUES ($1, $2, $3, $4, 'published', $5)",
            uuid.UUID(workflow_id), uuid.UUID(tenant_id), body.get("name", "test"), body, version,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
            " definition_json, definition_hash) VALUES ($1, $2, $3, $4, $5, $6)",
            uuid.uuid4(), uuid.UUID(tenant_id), uuid.UUID(workflow_id), version, body, digest,
        )  # fmt: skip
    return workflow_id, version, digest


async def launch_run(
    pool: asyncpg.Pool,
    client: Client,
    *,
    tenant_id: str,
    workflow_id: str,
    version: int,
    definition_hash: str | None,
    payload: Any = None,
    priority: int = DEFAULT_PRIORITY,
    preloaded: PreloadedRun | None = None,
    commands: str | None = RUN_COMMANDS,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Insert the run row and start it (at `priority`, weight 1); returns (run_id, handle).

    With `preloaded` the start carries the run, as the API's launch does (`preloaded_run`);
    `commands=None` starts it as a service that predates `RunInput.commands` does."""
    run_id = uuid.uuid4()
    await insert_run(
        pool,
        NewRun(
            run_id=run_id,
            tenant=uuid.UUID(tenant_id),
            workflow_id=uuid.UUID(workflow_id),
            workflow_version=version,
            input_json=payload if payload is not None else {},
            definition_hash=definition_hash,
            priority=priority,
        ),
    )
    run_input = RunInput(
        run_id=str(run_id),
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        workflow_version=version,
        root_run_id=str(run_id),
        preloaded=preloaded,
        commands=commands,
    )
    started = await launch(
        pool,
        client,
        run_input,
        run_priority(tenant=tenant_id, priority=priority, fairness_weight=DEFAULT_FAIRNESS_WEIGHT),
    )
    if started is None:
        raise RuntimeError(f"run {run_id} could not be started")
    return str(run_id), client.get_workflow_handle(workflow_id_for(str(run_id)))


def preloaded_run(
    definition: dict[str, Any], digest: str | None, payload: Any, registry: ActionRegistry
) -> PreloadedRun:
    """What the API's launch sends for a run of `definition` (action facts from `registry`)."""
    return PreloadedRun(
        definition=definition,
        definition_hash=digest,
        payload=payload,
        actions=action_facts(dsl.decode_definition(definition), registry.catalog()),
    )


async def run_definition(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    definition: dict[str, Any],
    payload: Any = None,
    priority: int = DEFAULT_PRIORITY,
    *,
    commands: str | None = RUN_COMMANDS,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Publish `definition` for the tenant and launch one run of it."""
    workflow_id, version, digest = await publish_definition(pool, tenant_id, definition)
    return await launch_run(
        pool,
        client,
        tenant_id=tenant_id,
        workflow_id=workflow_id,
        version=version,
        definition_hash=digest,
        payload=payload,
        priority=priority,
        commands=commands,
    )


async def start_steps(
    pool: asyncpg.Pool,
    client: Client,
    tenant_id: str,
    steps: list[Any],
    payload: Any = None,
    *,
    priority: int = DEFAULT_PRIORITY,
) -> tuple[str, WorkflowHandle[Any, RunResult]]:
    """Publish a definition of `steps` and launch one run; the handle's result is a `RunResult`."""
    run_id, handle = await run_definition(
        pool, client, tenant_id, {"name": "test", "steps": steps}, payload, priority
    )
    return run_id, client.get_workflow_handle(handle.id, result_type=RunResult)


async def run_steps(
    pool: asyncpg.Pool, client: Client, tenant_id: str, steps: list[Any], payload: Any = None
) -> tuple[str, str, asyncpg.Record]:
    """Run `steps` to the end: (run id, "completed" or "failed", the run row)."""
    run_id, handle = await start_steps(pool, client, tenant_id, steps, payload)
    closed = await outcome(handle)
    return run_id, closed, await run_row(pool, run_id)


async def outcome(handle: WorkflowHandle[Any, Any], timeout_s: float = 30.0) -> str:
    """Wait for the workflow to close; "completed" or "failed" (a run failure fails it too)."""
    try:
        await asyncio.wait_for(handle.result(), timeout_s)
    except WorkflowFailureError:
        return "failed"
    return "completed"


async def run_row(pool: asyncpg.Pool, run_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id))
    assert row is not None
    return row


async def step_rows(pool: asyncpg.Pool, run_id: str) -> list[asyncpg.Record]:
    """The run's step rows in start order (a step's row precedes its children's)."""
    return list(
        await pool.fetch(
            "SELECT * FROM workflow_run_steps WHERE run_id = $1 ORDER BY started_at, step_id",
            uuid.UUID(run_id),
        )
    )


class Probe:
    """Observes test actions: concurrent executions, calls per key."""

    def __init__(self) -> None:
        self.active = 0
        self.max_active = 0
        self.calls: collections.Counter[str] = collections.Counter()


def probe_actions(probe: Probe) -> list[Action]:
    """Test-only actions: `test.hold@1` {ms, key?} sleeps while counted as active (regular
    activity: `test.holdRemote@1`);
    `test.count@1` {key} counts executions (regular activity: `test.countRemote@1`);
    `test.flaky@1` {key, failures} fails with TransientError that many times, then succeeds;
    `test.big@1` {bytes} returns a string that large."""

    async def hold(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
        probe.active += 1
        probe.max_active = max(probe.max_active, probe.active)
        probe.calls[str(payload.get("key", ""))] += 1
        try:
            await asyncio.sleep(float(payload.get("ms", 100)) / 1000)
        finally:
            probe.active -= 1
        return {"key": payload.get("key")}

    async def count(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
        probe.calls[str(payload["key"])] += 1
        return {"calls": probe.calls[str(payload["key"])]}

    async def flaky(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
        key = str(payload["key"])
        probe.calls[key] += 1
        if probe.calls[key] <= int(payload["failures"]):
            raise ActionFailure(f"flaky failure {probe.calls[key]}", category="TransientError")
        return {"calls": probe.calls[key]}

    async def big(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
        return {"head": "h", "value": "x" * int(payload["bytes"])}

    def declaration(action_id: str, local: bool = True) -> ActionDeclaration:
        return ActionDeclaration(
            id=action_id, version=1, input_schema={"type": "object"},
            output_schema={"type": "object"}, timeout_s=10.0, local=local,
        )  # fmt: skip

    return [
        Action(declaration=declaration("test.hold"), handler=hold),
        Action(declaration=declaration("test.holdRemote", local=False), handler=hold),
        Action(declaration=declaration("test.count"), handler=count),
        Action(declaration=declaration("test.countRemote", local=False), handler=count),
        Action(declaration=declaration("test.flaky"), handler=flaky),
        Action(declaration=declaration("test.big"), handler=big),
    ]


@contextlib.asynccontextmanager
async def running_worker(
    client: Client,
    pool: asyncpg.Pool,
    *,
    extra_actions: Sequence[Action] = (),
    options: WorkerOptions | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[Worker]:
    """An in-process worker on the contract task queue: built-ins, installed plugins and
    `extra_actions`."""
    installed = ActionRegistry.default()
    actions = [installed.get(action_id, version) for action_id, version in installed.catalog()]
    registry = ActionRegistry([*(a for a in actions if a is not None), *extra_actions])
    worker = build_worker(
        client, pool, registry=registry, options=options or WorkerOptions(),
        interceptors=interceptors,
    )  # fmt: skip
    async with worker:
        yield worker
