"""Assembling the Temporal worker: the interpreter workflow and every activity it calls.

Used by `service.py` and by the tests (which run the same worker in-process).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
from stepwise_contract.names import TASK_QUEUE
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxRestrictions

from stepwise_worker.actions.base import ActionSettings, Publisher
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.activities.action_calls import ActionActivities
from stepwise_worker.activities.cancellation_store import CancellationStore
from stepwise_worker.activities.child_run_store import ChildRunStore
from stepwise_worker.activities.expression_evaluation import (
    ExpressionEvaluator,
    shared_evaluator,
)
from stepwise_worker.activities.payload_limit import DEFAULT_MAX_BYTES
from stepwise_worker.activities.projections import Projections
from stepwise_worker.activities.quota_store import QuotaStore
from stepwise_worker.activities.task_store import HumanTaskStore
from stepwise_worker.activities.wait_store import WaitStore
from stepwise_worker.sandbox_builtins import bind_plain_builtins
from stepwise_worker.sandbox_runner import CompiledSandboxRunner
from stepwise_worker.struct_warmup import warm, workflow_struct_types
from stepwise_worker.workflow.run_workflow import RunWorkflow

# Deterministic code the workflow imports: loaded once per process instead of once per run in
# the sandbox (the compiled-expression cache lives in stepwise_contract and is shared).
PASSTHROUGH_MODULES = (
    "stepwise_contract",
    "stepwise_worker",
    "jsonata",
    "re2",
    "_re2",
    "msgspec",
    "structlog",
)
# The passed-through pure-Python packages workflow code runs hot (the expression evaluator, the
# interpreter): they get the plain `isinstance` back (see sandbox_builtins).
PLAIN_BUILTINS_PACKAGES = ("stepwise_contract", "stepwise_worker", "jsonata")


class WorkerOptions(msgspec.Struct, frozen=True, kw_only=True):
    secret_key: str = ""
    action_settings: ActionSettings = msgspec.field(default_factory=ActionSettings)
    max_payload_bytes: int = DEFAULT_MAX_BYTES
    event_lookback_s: float = 300.0
    max_concurrent_activities: int = 100
    max_concurrent_local_activities: int = 200
    # Workflow activations are CPU-bound Python sharing one GIL: more at once adds no throughput,
    # but stretches each one's wall time toward Temporal's 2 s deadlock detector (an expression
    # holds a thread for a few milliseconds at most before it moves to a separate process; see
    # docs/expressions.md).
    max_concurrent_workflow_tasks: int = 8
    # Runs kept in memory between activations (Temporal's sticky cache); see settings.py.
    max_cached_workflows: int = 10_000
    shutdown_grace_s: float = 30.0


def workflow_runner() -> CompiledSandboxRunner:
    bind_plain_builtins(PLAIN_BUILTINS_PACKAGES)
    return CompiledSandboxRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)
    )


def activities_for(
    pool: asyncpg.Pool,
    *,
    registry: ActionRegistry,
    options: WorkerOptions,
    publish: Publisher | None = None,
    evaluator: ExpressionEvaluator | None = None,
) -> list[Any]:
    projections = Projections(
        pool, catalog=registry.catalog(), max_payload_bytes=options.max_payload_bytes
    )
    actions = ActionActivities(
        pool,
        registry=registry,
        max_payload_bytes=options.max_payload_bytes,
        secret_key=options.secret_key,
        action_settings=options.action_settings,
        publish=publish,
        record_steps=projections.write_steps,
    )
    stores = (
        WaitStore(pool, lookback_s=options.event_lookback_s),
        HumanTaskStore(pool),
        ChildRunStore(pool),
        QuotaStore(pool),
        CancellationStore(pool),
    )
    return [
        *projections.activities(),
        *actions.activities(),
        *(activity for store in stores for activity in store.activities()),
        *(evaluator or shared_evaluator()).activities(),
    ]


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    *,
    registry: ActionRegistry,
    options: WorkerOptions,
    publish: Publisher | None = None,
    interceptors: Sequence[Interceptor] = (),
    evaluator: ExpressionEvaluator | None = None,
) -> Worker:
    # before any activation thread decodes one (struct_warmup.py: concurrent first uses crash)
    warm(workflow_struct_types())
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[RunWorkflow],
        activities=activities_for(
            pool, registry=registry, options=options, publish=publish, evaluator=evaluator
        ),
        workflow_runner=workflow_runner(),
        max_concurrent_activities=options.max_concurrent_activities,
        max_concurrent_local_activities=options.max_concurrent_local_activities,
        max_concurrent_workflow_tasks=options.max_concurrent_workflow_tasks,
        max_cached_workflows=options.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=options.shutdown_grace_s),
        interceptors=interceptors,
    )
