"""What a failed local activity means to workflow code.

A local activity that failed surfaces as `ActivityError(cause)` or, once its retries are exhausted
or it is non-retryable, as the cause itself. A cancelled one is the run being cancelled, never a
step error: it becomes `asyncio.CancelledError` again.
"""

from __future__ import annotations

import asyncio

from temporalio.exceptions import ActivityError, CancelledError, FailureError


def failure_cause(err: FailureError) -> BaseException:
    """The failure behind `err`; raises `asyncio.CancelledError` when it was a cancellation."""
    cause = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, CancelledError):
        raise asyncio.CancelledError() from None
    return cause or err
