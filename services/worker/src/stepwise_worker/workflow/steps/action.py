"""`action.call` (SPEC §3, §5): resolve inputs in the workflow, run the action as an activity.

The declaration decides how it runs: a local activity for fast in-process actions, a regular
activity for external I/O. Temporal retries only infrastructure failures (worker lost, ledger
unreachable); the action's own errors come back non-retryable and the DSL retry policy decides.
`$secret` refs travel unresolved with the positions the definition wrote them at: the activity
resolves those only, so no secret enters history and a ref arriving as data stays data.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import msgspec
from stepwise_contract import dsl
from stepwise_contract.enums import ErrorCategory
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from stepwise_worker.messages import EXECUTE_ACTION, ActionInfo, ActionRequest, ActionResult
from stepwise_worker.step_errors import StepError, failure_from_activity
from stepwise_worker.workflow.bookkeeping import DeferredStart
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.scopes import check_json_limits
from stepwise_worker.workflow.secret_positions import declared_secret_paths
from stepwise_worker.workflow.step_context import StepContext

# Room for the ledger reads and writes around the handler's own timeout.
LEDGER_MARGIN = timedelta(seconds=15)
# A regular action activity heartbeats every 2 s (activities/action_calls.py): a lost worker is
# detected after this long and the call retried elsewhere (the ledger may already hold its result).
HEARTBEAT_TIMEOUT = timedelta(seconds=10)
# Infrastructure failures only (action errors are raised non-retryable by the activity).
INFRA_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=5,
)

_canonical = msgspec.json.Encoder(order="deterministic")


def input_hash(value: Any) -> str:
    return hashlib.sha256(_canonical.encode(value)).hexdigest()[:32]


def default_idempotency_key(
    *, tenant_id: str, run_id: str, at: At, action_id: str, version: int, payload: Any
) -> str:
    """`<tenant>:<runId>:<stepPath>:<actionId>:<version>:<hash of input>` + forEach item indices."""
    key = f"{tenant_id}:{run_id}:{at.path}:{action_id}:{version}:{input_hash(payload)}"
    if at.item_keys:
        key += ":item" + ".".join(str(i) for i in at.item_keys)
    return key


async def run_action(request: ActionRequest, info: ActionInfo) -> ActionResult:
    timeout = timedelta(seconds=info.timeout_s) + LEDGER_MARGIN
    result: ActionResult
    try:
        if info.local:
            result = await workflow.execute_local_activity(
                EXECUTE_ACTION,
                request,
                result_type=ActionResult,
                start_to_close_timeout=timeout,
                retry_policy=INFRA_RETRY,
            )
        else:
            result = await workflow.execute_activity(
                EXECUTE_ACTION,
                request,
                result_type=ActionResult,
                start_to_close_timeout=timeout,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=INFRA_RETRY,
            )
    except FailureError as err:
        raise failure_from_activity(err) from None
    return result


async def action_call(ctx: StepContext, step: dsl.ActionCall, at: At) -> None:
    # the step's start row, when it rides in the action activity (interpreter.py)
    deferred = ctx.take_deferred_start()
    try:
        request, info = await _request(ctx, step, at, deferred)
    except StepError:
        if deferred is not None:  # no activity will carry it: write it (and what it holds) now
            await ctx.book.commit_deferred(deferred)
        raise
    try:
        result = await run_action(request, info)
    except StepError:
        if deferred is not None:
            # The activity records the start first, so the row normally exists; if it failed
            # before that (Postgres down through every retry), write the start now. Idempotent.
            await ctx.book.commit_deferred(
                DeferredStart(step_id=deferred.step_id, batch=ctx.book.retry_batch(deferred))
            )
        raise
    if result.quota is not None:
        assert deferred is not None
        # no capacity for this step: pause, then start it for real and call the action
        await ctx.book.pause_for_quota(deferred, result.quota)
        await ctx.book.commit_deferred(
            DeferredStart(step_id=deferred.step_id, batch=ctx.book.retry_batch(deferred))
        )
        result = await run_action(msgspec.structs.replace(request, steps=None), info)
    if step.config.save_as:
        ctx.scopes.assign(step.config.save_as, result.output, at.frame, path=at.path)


async def _request(
    ctx: StepContext, step: dsl.ActionCall, at: At, deferred: DeferredStart | None
) -> tuple[ActionRequest, ActionInfo]:
    config = step.config
    key = f"{config.action_id}@{config.version}"
    info = ctx.actions.get(key)
    if info is None:
        raise StepError(ErrorCategory.VALIDATION, f"unknown action {key}", code="UNKNOWN_ACTION")
    payload = await ctx.evaluate_mapping(config.input_mapping or {}, at, what="input")
    check_json_limits(payload, what=f"the input of {key}", path=at.path)
    if config.idempotency_key is not None:
        explicit = await ctx.evaluate(config.idempotency_key, at, what="idempotencyKey")
        if not isinstance(explicit, str | int | float) or isinstance(explicit, bool):
            raise StepError(
                ErrorCategory.EXPRESSION,
                "idempotencyKey must evaluate to a string or a number",
                code="INVALID_IDEMPOTENCY_KEY",
            )
        idempotency_key = str(explicit)
    else:
        run = ctx.run_input
        idempotency_key = default_idempotency_key(
            tenant_id=run.tenant_id,
            run_id=run.run_id,
            at=at,
            action_id=config.action_id,
            version=config.version,
            payload=payload,
        )
    request = ActionRequest(
        tenant_id=ctx.run_input.tenant_id,
        run_id=ctx.run_input.run_id,
        step_path=at.path,
        action_id=config.action_id,
        version=config.version,
        input=payload,
        idempotency_key=idempotency_key,
        attempt=at.attempt,
        steps=deferred.batch if deferred is not None else None,
        secret_paths=declared_secret_paths(config.input_mapping or {}),
    )
    return request, info
