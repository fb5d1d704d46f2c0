"""The step-type → handler table. Registering a step type is one entry in `HANDLERS`.

A handler is `async (ctx, step, at) -> None` with `ctx` a `StepContext`: it does the step's own
work; the interpreter around it writes the step rows, applies retry / onError and routes errors.
Container handlers run their nested sequences with `ctx.run_sequence(steps, at.branch(...))`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from stepwise_contract.enums import ErrorCategory

from stepwise_worker.step_errors import StepError
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.step_context import StepContext
from stepwise_worker.workflow.steps.action import action_call
from stepwise_worker.workflow.steps.children import call_workflow
from stepwise_worker.workflow.steps.control import (
    control_for_each,
    control_if,
    control_return,
    control_try_catch,
)
from stepwise_worker.workflow.steps.data import state_set, transform_assign
from stepwise_worker.workflow.steps.waits import event_wait, human_task, time_wait

StepHandler = Callable[[StepContext, Any, At], Awaitable[None]]


def step_type(step: Any) -> str:
    """The `type` of a decoded step (the msgspec tag of its Struct class)."""
    return str(type(step).__struct_config__.tag)


async def not_implemented(_ctx: StepContext, step: Any, at: At) -> None:
    raise StepError(
        ErrorCategory.VALIDATION,
        f"step type {step_type(step)!r} is not implemented yet",
        code="STEP_TYPE_NOT_IMPLEMENTED",
        node_path=at.path,
    )


HANDLERS: dict[str, StepHandler] = {
    "action.call": action_call,
    "transform.assign": transform_assign,
    "state.set": state_set,
    "control.if": control_if,
    "control.forEach": control_for_each,
    "control.tryCatch": control_try_catch,
    "control.return": control_return,
    "control.callWorkflow": call_workflow,
    "event.wait": event_wait,
    "time.wait": time_wait,
    "human.task": human_task,
}

# Step types whose `retry` / `onError` the interpreter applies (SPEC §3).
RETRYABLE_STEP_TYPES = frozenset({"action.call", "control.callWorkflow"})

# Step types with no effect outside the workflow (they change the run's scopes only): when one
# ends the run its start is held for the run's completion (`Bookkeeper.hold_start`).
DATA_STEP_TYPES = frozenset({"state.set", "transform.assign"})
