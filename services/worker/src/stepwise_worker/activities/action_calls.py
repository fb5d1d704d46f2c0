"""The action activity: ledger, secrets, size ceiling and handler around one `action.call` attempt.

Errors of the action itself leave as a non-retryable `ApplicationError` whose details carry
`{category, message, code?, details?}`: Temporal does not retry them, the DSL retry policy
decides. Anything else raised here (the ledger unreachable, a worker shutting down) is retried by
Temporal, and the ledger makes the retry return a finished invocation instead of running it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import structlog
from stepwise_contract.enums import ErrorCategory
from stepwise_contract.json_limits import JsonRefused, check_json
from temporalio import activity

from stepwise_worker import metrics
from stepwise_worker.actions.base import (
    ActionContext,
    ActionFailure,
    ActionSettings,
    Publisher,
    invoke,
)
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.activities.invocation_ledger import Ledger
from stepwise_worker.activities.legacy_blobs import LegacyBlobs
from stepwise_worker.activities.payload_limit import PayloadTooLarge, check_size
from stepwise_worker.activities.secret_refs import (
    Scrubber,
    SecretUnavailable,
    declared_refs,
    load_secrets,
    redact,
    substitute,
)
from stepwise_worker.messages import (
    EXECUTE_ACTION,
    ActionRequest,
    ActionResult,
    Recorded,
    StepBatch,
)
from stepwise_worker.step_errors import action_error

log = structlog.get_logger("stepwise_worker.actions")

# A regular activity heartbeats while its handler runs, so a worker that dies is noticed after
# the heartbeat timeout (see workflow/steps/action.py) instead of the action's whole timeout.
HEARTBEAT_EVERY_S = 2.0


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    if activity.info().is_local:
        yield
        return

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


class ActionActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        registry: ActionRegistry,
        max_payload_bytes: int,
        secret_key: str,
        action_settings: ActionSettings,
        publish: Publisher | None = None,
        record_steps: Callable[[StepBatch], Awaitable[Recorded]] | None = None,
    ) -> None:
        self._pool = pool
        self._registry = registry
        self._legacy = LegacyBlobs(pool)
        self._max_bytes = max_payload_bytes
        self._ledger = Ledger(pool)
        self._secret_key = secret_key
        self._settings = action_settings
        self._publish = publish
        self._record_steps = record_steps

    def activities(self) -> list[Any]:
        return [self.execute_action]

    @activity.defn(name=EXECUTE_ACTION)
    async def execute_action(self, req: ActionRequest) -> ActionResult:
        # every line of this attempt (ours, the actions', Temporal's activity logger) names it
        with structlog.contextvars.bound_contextvars(
            tenant=req.tenant_id, run_id=req.run_id, step_path=req.step_path
        ):
            return await self._execute(req)

    async def _execute(self, req: ActionRequest) -> ActionResult:
        if req.steps is not None:
            # the step's start row travels with the call (one round trip per step, SPEC §11);
            # re-recording on a retried attempt changes nothing (idempotent by step id)
            if self._record_steps is None:
                raise RuntimeError("execute_action got step rows but has no projection writer")
            recorded = await self._record_steps(req.steps)
            if recorded.quota is not None:
                return ActionResult(output=None, quota=recorded.quota)
        action = self._registry.get(req.action_id, req.version)
        if action is None:
            raise action_error(
                ErrorCategory.VALIDATION,
                f"unknown action {req.action_id}@{req.version}",
                code="UNKNOWN_ACTION",
            )
        payload = await self._legacy.materialize(req.tenant_id, req.run_id, req.input)
        try:
            check_json(payload, what=f"input of {req.action_id}@{req.version}")
        except JsonRefused as exc:  # the input's fault (a NUL, too deep): never retried
            raise action_error(ErrorCategory.VALIDATION, exc.detail, code=exc.code) from None
        refs = declared_refs(payload, req.secret_paths or [])
        secrets: dict[str, str] = {}
        if refs:
            try:
                secrets = await load_secrets(
                    self._pool, req.tenant_id, refs.values(), self._secret_key
                )
            except SecretUnavailable as exc:
                raise action_error(
                    ErrorCategory.VALIDATION, str(exc), code="SECRET_NOT_FOUND"
                ) from None
        begun = await self._ledger.begin(
            tenant_id=req.tenant_id,
            run_id=req.run_id,
            step_path=req.step_path,
            action_id=req.action_id,
            version=req.version,
            idempotency_key=req.idempotency_key,
            attempt=req.attempt,
            recorded_input=redact(payload, refs) if refs else payload,
        )
        if begun.replayed:
            log.info("action_replayed_from_ledger", run_id=req.run_id, step_path=req.step_path,
                     action=req.action_id, invocation_id=begun.invocation_id)  # fmt: skip
            return ActionResult(
                output=begun.output, invocation_id=begun.invocation_id, replayed=True
            )
        ctx = ActionContext(
            tenant_id=req.tenant_id,
            run_id=req.run_id,
            step_path=req.step_path,
            attempt=req.attempt,
            idempotency_key=req.idempotency_key,
            pool=self._pool,
            publish=self._publish,
            settings=self._settings,
        )
        scrubber = Scrubber(secrets.values())
        label = f"{req.action_id}@{req.version}"  # bounded: a registered action
        started = time.perf_counter()
        try:
            async with _heartbeating():
                output = await invoke(
                    action, substitute(payload, refs, secrets) if refs else payload, ctx
                )
        except ActionFailure as failure:
            metrics.ACTION_SECONDS.labels(label).observe(time.perf_counter() - started)
            metrics.ACTION_FAILURES.labels(label, metrics.failure_category(failure.category)).inc()
            error = scrubber.value(
                {
                    "category": failure.category,
                    "message": failure.message,
                    **({"code": failure.code} if failure.code is not None else {}),
                    **({"details": failure.details} if failure.details is not None else {}),
                }
            )
            error = _storable(error)
            await self._ledger.fail(req.tenant_id, begun.invocation_id, error)
            log.info("action_failed", tenant=req.tenant_id, run_id=req.run_id,
                     step_path=req.step_path, action=req.action_id, attempt=req.attempt,
                     category=error["category"], code=error.get("code"))  # fmt: skip
            raise action_error(
                error["category"], error["message"], code=error.get("code"),
                details=error.get("details"),
            ) from None  # fmt: skip
        metrics.ACTION_SECONDS.labels(label).observe(time.perf_counter() - started)
        what = f"output of {req.action_id}@{req.version}"
        try:
            check_json(output, what=what)
            output = scrubber.value(output)
            check_size(output, self._max_bytes, what)
        except (JsonRefused, PayloadTooLarge) as exc:
            code = exc.code if isinstance(exc, JsonRefused) else "PAYLOAD_TOO_LARGE"
            error = {"category": ErrorCategory.VALIDATION, "message": str(exc), "code": code}
            await self._ledger.fail(req.tenant_id, begun.invocation_id, error)
            raise action_error(ErrorCategory.VALIDATION, str(exc), code=code) from None
        await self._ledger.succeed(req.tenant_id, begun.invocation_id, output)
        return ActionResult(output=output, invocation_id=begun.invocation_id)


def _storable(error: dict[str, Any]) -> dict[str, Any]:
    """An action's error as the ledger and history can hold it: details that nest too deep or
    carry a NUL (an HTTP body echoed in them) are dropped, the message's NULs escaped."""
    try:
        check_json(error, what="the error")
    except JsonRefused:
        error = {k: v for k, v in error.items() if k != "details"}
        error["message"] = str(error["message"]).replace("\x00", "\\u0000")
    return error
