"""Control steps (SPEC §3): `control.if`, `.forEach`, `.tryCatch`, `.return`."""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise_contract import dsl
from stepwise_contract.enums import ErrorCategory
from stepwise_contract.expression_budget import MAX_RESULT_BYTES, MAX_SELECTED_BYTES
from temporalio import workflow

from stepwise_worker.step_errors import ReturnSignal, StepError
from stepwise_worker.workflow.frames import At, LoopFrame
from stepwise_worker.workflow.step_context import StepContext

FOR_EACH_SELECTS_PATCH = "stepwise-for-each-selects-large-lists"


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


async def control_if(ctx: StepContext, step: dsl.ControlIf, at: At) -> None:
    condition = await ctx.evaluate(step.condition, at, what="condition")
    if not isinstance(condition, bool):
        raise StepError(
            ErrorCategory.EXPRESSION,
            f"control.if condition must evaluate to a boolean, got {_type_name(condition)}",
            code="CONDITION_NOT_BOOLEAN",
            node_path=at.path,
        )
    if condition:
        await ctx.run_sequence(step.then, at.branch("then"))
    elif step.else_:
        await ctx.run_sequence(step.else_, at.branch("else"))


async def control_for_each(ctx: StepContext, step: dsl.ControlForEach, at: At) -> None:
    # continue-as-new (checkpoint.py): a sequential loop re-entered after a
    # checkpoint keeps the items it evaluated and goes on from the item it was running
    resumed = ctx.checkpoints.resumed_loop(at)
    if resumed is not None:
        items = resumed.items
    else:
        # `items` may select a list as large as any value of the run (a 1 MB input list); what an
        # expression *computes* stays capped at 256 KiB. Runs recorded before keep the old cap.
        ceiling = (
            MAX_SELECTED_BYTES if workflow.patched(FOR_EACH_SELECTS_PATCH) else MAX_RESULT_BYTES
        )
        items = await ctx.evaluate(step.items, at, what="items", max_result_bytes=ceiling)
    if not isinstance(items, list):
        raise StepError(
            ErrorCategory.EXPRESSION,
            f"control.forEach items must evaluate to an array, got {_type_name(items)}",
            code="ITEMS_NOT_ARRAY",
            node_path=at.path,
        )
    if not items or not step.body:
        return
    keep_going = step.on_item_error == "continue"
    positions = [
        at.item(LoopFrame(step.item_var, item, index, len(items)), continue_on_error=keep_going)
        for index, item in enumerate(items)
    ]
    if step.concurrency <= 1:
        ctx.checkpoints.enter_loop(at, items)
        try:
            for position in positions[resumed.item if resumed is not None else 0 :]:
                assert position.frame is not None
                ctx.checkpoints.loop_item(at, position.frame, resumed)
                await ctx.run_sequence(step.body, position)
        finally:
            ctx.checkpoints.leave_loop(at)
        return
    await _run_concurrently(ctx, step.body, positions, step.concurrency)


async def _run_concurrently(
    ctx: StepContext, body: list[Any], positions: list[At], limit: int
) -> None:
    """Up to `limit` items at once, as workflow tasks (deterministic: the workflow event loop
    and the semaphore's FIFO order are replayed identically).

    The first item that fails (or returns) stops new items from starting; items already running
    finish; then the outcome of the lowest-index item that did not complete normally is raised.
    """
    gate = asyncio.Semaphore(limit)
    stop = False

    async def one(position: At) -> None:
        nonlocal stop
        async with gate:
            if stop:
                return
            try:
                await ctx.run_sequence(body, position)
            except (StepError, ReturnSignal):
                stop = True
                raise

    # gather cancels every item task when the workflow is cancelled
    outcomes = await asyncio.gather(*(one(p) for p in positions), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, StepError | ReturnSignal):
            raise outcome
        if isinstance(outcome, BaseException):
            raise outcome


async def control_try_catch(ctx: StepContext, step: dsl.ControlTryCatch, at: At) -> None:
    try:
        # inside `try`, this tryCatch is the nearest handler: no forEach "continue" applies
        await ctx.run_sequence(step.try_, at.branch("try", continue_on_error=False))
    except StepError as err:
        caught = err.to_json()
        ctx.scopes.error = caught
        if step.capture_error_as:
            ctx.scopes.assign(step.capture_error_as, caught, at.frame, path=at.path)
        await ctx.run_sequence(step.catch, at.branch("catch"))


async def control_return(_ctx: StepContext, _step: dsl.ControlReturn, _at: At) -> None:
    raise ReturnSignal()
