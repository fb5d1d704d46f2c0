"""The DSL interpreter (SPEC §3-§5): runs step sequences inside the workflow.

Deterministic by construction: no I/O and no clock but `workflow.now()`; activities are reached
through the `Bookkeeper` (projections) and the step handlers (actions). Control flow is Python
control flow: a failing step raises `StepError`, which climbs to the nearest handler —
the sequence itself when the nearest enclosing handler is a forEach with `onItemError: continue`
(`At.continue_on_error`), a tryCatch's handler, or the run. `control.return` raises `ReturnSignal`.
Cancellation stays `asyncio.CancelledError` and is never caught.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from stepwise_contract import dsl
from stepwise_contract.enums import ErrorCategory, StepStatus
from stepwise_contract.expression_budget import COSTS_V1, INLINE_COSTS, MAX_RESULT_BYTES
from stepwise_contract.expressions import UNDEFINED, ExpressionError, is_expr, resolve_value
from stepwise_contract.payloads import CurrentStep, RunInput
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

from stepwise_worker.evaluation_messages import (
    EVALUATE_EXPRESSION,
    EvaluatedExpression,
    EvaluateExpression,
)
from stepwise_worker.messages import ActionInfo
from stepwise_worker.step_errors import ReturnSignal, StepError, expression_failure
from stepwise_worker.workflow.activity_failures import failure_cause
from stepwise_worker.workflow.bookkeeping import Bookkeeper, DeferredStart
from stepwise_worker.workflow.checkpoint import ROOT, Checkpoints
from stepwise_worker.workflow.dispatch import (
    DATA_STEP_TYPES,
    RETRYABLE_STEP_TYPES,
    StepHandler,
    step_type,
)
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.patches import (
    EXPRESSION_OFFLOAD,
    HELD_LAST_START,
    MERGED_ACTION_START,
    RunPatches,
)
from stepwise_worker.workflow.retry import backoff_ms, should_retry
from stepwise_worker.workflow.scopes import Scopes

# the evaluation is deterministic: only the process pool itself can fail, and rarely
OFFLOAD_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3)
OFFLOAD_TIMEOUT = timedelta(seconds=30)


def now_iso() -> str:
    """Workflow time as ISO 8601 UTC with milliseconds (what `nowIso()` returns)."""
    return workflow.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Interpreter:
    def __init__(
        self,
        *,
        run: RunInput,
        definition: dsl.Definition,
        scopes: Scopes,
        actions: Mapping[str, ActionInfo],
        book: Bookkeeper,
        inbox: Inbox,
        handlers: Mapping[str, StepHandler],
        patches: RunPatches,
    ) -> None:
        self.run_input = run
        self.definition = definition
        self.scopes = scopes
        self.actions = actions
        self.book = book
        self.inbox = inbox
        self.handlers = handlers
        self.current_step: CurrentStep | None = None
        self.steps_executed = 0
        # where the run can continue as new; replaced when resuming a checkpoint
        self.checkpoints = Checkpoints()
        # control.callWorkflow: the latest child run per step execution (carried by checkpoints)
        self.child_runs: dict[str, str] = {}
        # A local action's step-start row travels inside its action activity (one round trip
        # per step instead of two). It changes the commands a run issues, hence the patch:
        # histories recorded before it replay on the old path.
        self.merge_action_starts = patches.has(MERGED_ACTION_START)
        self.deferred_start: DeferredStart | None = None
        # A data step that ends the run writes its row with the run's completion (one round
        # trip fewer per run; bookkeeping.py says why that is safe).
        self.hold_last_start = patches.has(HELD_LAST_START)
        # Expressions are priced by the list the run started with, so a replay counts the same
        # work. Runs started since the patch evaluate with a small budget here and send what runs
        # out of it to a separate process (`_evaluate_offloaded`); earlier runs keep the first
        # price list, inline only.
        self.offload_expressions = patches.has(EXPRESSION_OFFLOAD)
        self.expression_costs = INLINE_COSTS if self.offload_expressions else COSTS_V1

    # -- expressions ---------------------------------------------------------------------------

    async def evaluate(
        self,
        value: Any,
        at: At,
        *,
        what: str,
        required: bool = True,
        max_result_bytes: int = MAX_RESULT_BYTES,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Resolve a config value (`$expr` anywhere inside; `$secret` refs kept for activities).

        `extra` adds names to the expression context (e.g. `childRun`). With `required`, a final
        result that is undefined raises `ExpressionError` (SPEC §4).
        """
        context = self.scopes.context(at.frame)
        if extra:
            context = {**context, **extra}
        try:
            result = resolve_value(
                value,
                context,
                now_iso=now_iso,
                max_result_bytes=max_result_bytes,
                costs=self.expression_costs,
            )
        except ExpressionError as exc:
            if not (exc.over_budget and self.offload_expressions):
                raise expression_failure(exc, at.path) from None
            result = await self._evaluate_offloaded(value, context, max_result_bytes, at)
        if result is UNDEFINED and required:
            source = value["$expr"] if is_expr(value) else repr(value)
            raise StepError(
                ErrorCategory.EXPRESSION,
                f"{what} evaluated to undefined at {at.path} (expression: {source})",
                code="UNDEFINED_RESULT",
                details={"expression": source},
                node_path=at.path,
            )
        return result

    async def _evaluate_offloaded(
        self, value: Any, context: dict[str, Any], max_result_bytes: int, at: At
    ) -> Any:
        """The same evaluation with the large budget, in the worker's expression processes; the
        outcome is recorded in history, so a replay never evaluates it again."""
        try:
            outcome: EvaluatedExpression = await workflow.execute_local_activity(
                EVALUATE_EXPRESSION,
                EvaluateExpression(
                    value=value,
                    context=context,
                    now_iso=now_iso(),
                    max_result_bytes=max_result_bytes,
                ),
                result_type=EvaluatedExpression,
                start_to_close_timeout=OFFLOAD_TIMEOUT,
                retry_policy=OFFLOAD_RETRY,
            )
        except FailureError as err:
            cause = failure_cause(err)
            raise StepError(
                ErrorCategory.TRANSIENT,
                f"the expression at {at.path} could not be evaluated: {cause}",
                code="EXPRESSION_EVALUATOR_UNAVAILABLE",
                node_path=at.path,
            ) from None
        if outcome.error is not None:
            failure = ExpressionError(outcome.error, source=outcome.source)
            raise expression_failure(failure, at.path) from None
        return outcome.value if outcome.defined else UNDEFINED

    async def evaluate_mapping(
        self, mapping: Mapping[str, Any], at: At, *, what: str
    ) -> dict[str, Any]:
        """Each entry of an input mapping; an entry that is undefined is an error (an input)."""
        return {
            key: await self.evaluate(value, at, what=f"{what} {key!r}")
            for key, value in mapping.items()
        }

    # -- execution ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Run the definition's steps; returns normally or by `ReturnSignal`."""
        await self.run_sequence(self.definition.steps, At(path=ROOT))

    async def run_sequence(self, steps: Sequence[Any], at: At) -> None:
        """Run `steps` in order; `at.path` is the sequence's prefix (`root`, `….then`, …)."""
        # continue-as-new (checkpoint.py): re-entry index and safe points
        start = self.checkpoints.enter_sequence(at)
        last = len(steps) - 1 if at.path == ROOT else -1
        try:
            for index, step in enumerate(steps):
                if index < start:
                    continue
                try:
                    await self.run_step(step, at.step(index), ends_run=index == last)
                except StepError as err:
                    if not at.continue_on_error:
                        raise
                    # forEach onItemError: continue — the next step of this same sequence runs
                    self.scopes.error = err.to_json()
                await self.checkpoints.safe_point(self, at, index + 1, len(steps))
        finally:
            self.checkpoints.leave_sequence(at)

    def _carries_start(self, step: Any, kind: str) -> bool:
        """Whether the step's start row rides in its (local) action activity."""
        if not self.merge_action_starts or kind != "action.call":
            return False
        info = self.actions.get(f"{step.config.action_id}@{step.config.version}")
        return info is not None and info.local

    def take_deferred_start(self) -> DeferredStart | None:
        deferred, self.deferred_start = self.deferred_start, None
        return deferred

    async def run_step(self, step: Any, at: At, *, ends_run: bool = False) -> None:
        """One step with its rows, retry policy and onError; raises what it does not handle.

        `ends_run`: the last step of the definition's top-level sequence."""
        kind = step_type(step)
        handler = self.handlers.get(kind)
        if handler is None:  # the DSL decoder knows every type; a table gap is a worker bug
            raise StepError(
                ErrorCategory.VALIDATION,
                f"no handler for step type {kind!r}",
                code="UNKNOWN_NODE_TYPE",
                node_path=at.path,
            )
        retryable = kind in RETRYABLE_STEP_TYPES
        policy: dsl.RetryPolicy | None = getattr(step, "retry", None) if retryable else None
        on_error: dsl.OnError | None = getattr(step, "on_error", None) if retryable else None
        attempt = 1
        # a container re-entered after continue-as-new keeps its step row (checkpoint.py)
        resumed = self.checkpoints.resumed_step(at)
        while True:
            if resumed is not None:
                step_id, attempt = resumed
                resumed = None
            elif ends_run and self.hold_last_start and kind in DATA_STEP_TYPES:
                step_id = self.book.hold_start(
                    step_path=at.path, definition_step_id=step.id, step_type=kind, attempt=attempt
                )
            elif self._carries_start(step, kind):
                self.deferred_start = self.book.defer_start(
                    step_path=at.path, definition_step_id=step.id, step_type=kind, attempt=attempt
                )
                step_id = self.deferred_start.step_id
            else:
                step_id = await self.book.start_step(
                    step_path=at.path, definition_step_id=step.id, step_type=kind, attempt=attempt
                )
            self.checkpoints.step_started(at, step_id, attempt)
            self.current_step = CurrentStep(step_path=at.path, step_id=step.id, step_type=kind)
            self.steps_executed += 1
            try:
                await handler(self, step, at.with_attempt(attempt))
            except ReturnSignal:
                self.book.finish_step(step_id, StepStatus.SUCCEEDED)
                raise
            except StepError as err:
                err.locate(at.path, now_iso())
                self.book.finish_step(step_id, StepStatus.FAILED, err.to_json())
                if should_retry(policy, attempt, err.category):
                    assert policy is not None
                    delay = backoff_ms(policy, attempt, workflow.random().random)
                    # the FAILED attempt row must not wait for the timer to be written
                    await self.book.flush()
                    if delay > 0:
                        await workflow.sleep(delay / 1000)
                    attempt += 1
                    continue
                if on_error is not None and on_error.policy == "continue":
                    self.scopes.error = err.to_json()
                    return
                raise
            except asyncio.CancelledError:
                self.book.finish_step(step_id, StepStatus.CANCELED)
                raise
            self.book.finish_step(step_id, StepStatus.SUCCEEDED)
            return
