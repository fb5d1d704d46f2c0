"""Data steps: `transform.assign` and `state.set` (SPEC §3). Pure workflow code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepwise_contract import dsl

from stepwise_worker.workflow.frames import At

if TYPE_CHECKING:
    from stepwise_worker.workflow.interpreter import Interpreter


async def transform_assign(interp: Interpreter, step: dsl.TransformAssign, at: At) -> None:
    """Evaluate in order; each assignment sees the earlier ones."""
    for target, value in step.config.assign.items():
        result = interp.evaluate(value, at, what=f"assign {target!r}")
        interp.scopes.assign(target, result, at.frame, path=at.path)


async def state_set(interp: Interpreter, step: dsl.StateSet, _at: At) -> None:
    interp.scopes.meta["state"] = step.config.state
