"""Data steps: `transform.assign` and `state.set` (SPEC §3). Pure workflow code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwise_contract import dsl

from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.step_context import StepContext


async def assign_in_order(ctx: StepContext, assign: Mapping[str, Any] | None, at: At) -> None:
    """Evaluate in order; each assignment sees the earlier ones (also a wait step's `assign`)."""
    for target, value in (assign or {}).items():
        result = await ctx.evaluate(value, at, what=f"assign {target!r}")
        ctx.scopes.assign(target, result, at.frame, path=at.path)


async def transform_assign(ctx: StepContext, step: dsl.TransformAssign, at: At) -> None:
    await assign_in_order(ctx, step.config.assign, at)


async def state_set(ctx: StepContext, step: dsl.StateSet, _at: At) -> None:
    ctx.scopes.meta["state"] = step.config.state
