"""What a Temporal cancel does to a run's projections (SPEC §5).

The interpreter never turns cancellation into a step error (it stays `asyncio.CancelledError`,
which no `except StepError` catches, so no tryCatch swallows it). At the top, the workflow calls
`record_cancellation`: the buffered step completions are flushed, then the running step(s), open
waits, pending human tasks and the run become `CANCELED` — in a task that a second cancel
request cannot interrupt — and the cancellation is re-raised so Temporal closes the workflow as
cancelled. Child runs are cancelled by Temporal itself (see `steps/children.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

from stepwise_worker.wait_messages import CANCEL_RUN, CancelRun, Done
from stepwise_worker.workflow.store_calls import local


def is_run_cancellation(err: BaseException) -> bool:
    """A cancellation of this run by Temporal (not an inner task's or a child's own cancel)."""
    return is_cancelled_exception(err) and workflow.cancellation_reason() is not None


async def record_cancellation(
    *,
    tenant_id: str,
    run_id: str,
    node_path: str | None,
    flush: Callable[[], Awaitable[None]],
) -> None:
    """Mark steps, waits, tasks and the run `CANCELED`; never interrupted half-way."""

    async def cleanup() -> None:
        await flush()  # buffered completions first: they must not be mistaken for running steps
        await local(
            CANCEL_RUN,
            CancelRun(
                tenant_id=tenant_id,
                run_id=run_id,
                node_path=node_path,
                at=workflow.now(),
                message=f"Run canceled: {workflow.cancellation_reason() or 'cancel requested'}",
            ),
            Done,
        )

    task = asyncio.ensure_future(cleanup())
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            continue  # a repeated cancel request: the cleanup still has to finish
    task.result()
