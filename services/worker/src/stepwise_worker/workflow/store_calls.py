"""Calls from workflow code to the stores' local activities (waits, tasks, child runs, quota,
cancellation), by activity name.

`local()` turns a cancelled local activity back into `asyncio.CancelledError` (cancellation is never
a step error) and a modelled failure into a `StepError`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, TypeVar

from stepwise_contract.enums import ErrorCategory
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

from stepwise_worker.step_errors import StepError
from stepwise_worker.workflow.activity_failures import failure_cause

T = TypeVar("T")

# Postgres blinking must not fail a run: the wait store's writes retry until it is back.
STORE_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
    non_retryable_error_types=["ValidationError"],
)
STORE_TIMEOUT = timedelta(seconds=30)


async def local(name: str, arg: Any, result_type: type[T]) -> T:
    """Run a wait-store local activity; a modelled failure becomes a `StepError`."""
    try:
        result: T = await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=STORE_TIMEOUT,
            retry_policy=STORE_RETRY,
        )
        return result
    except FailureError as err:
        cause = failure_cause(err)
        if isinstance(cause, ApplicationError):
            detail = cause.details[0] if cause.details else None
            code = detail.get("code") if isinstance(detail, dict) else None
            raise StepError(
                cause.type or ErrorCategory.TRANSIENT, cause.message, code=code, details=detail
            ) from None
        raise StepError(ErrorCategory.TRANSIENT, str(cause)) from None
