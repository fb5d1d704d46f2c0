"""Workflow-side plumbing shared by the long-lived steps (waits, human tasks, child runs, quota).

Signals land in the workflow's inbox (`RunWorkflow.inbox`, a list of `PendingSignal`); a blocking
step takes the first entry it accepts out of it, so entries nobody accepted stay buffered (and are
carried across continue-as-new). Event ids a run consumed are remembered
(`RunWorkflow.consumed_event_ids`) so the same event — delivered twice, or both buffered and
signalled — is consumed at most once per run (SPEC §5.4).

The wait store's local activities are called through `local()`, which turns a cancelled local
activity back into `asyncio.CancelledError`: cancellation is never a step error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

import msgspec
from stepwise_contract.enums import ErrorCategory
from stepwise_contract.expressions import UNDEFINED, ExpressionError, resolve_value
from stepwise_contract.payloads import CurrentWait, PendingSignal
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError

from stepwise_worker.errors import StepError, expression_failure
from stepwise_worker.workflow.frames import At

if TYPE_CHECKING:  # a runtime import would be circular (interpreter → dispatch → here)
    from stepwise_worker.workflow.interpreter import Interpreter

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


class WaitHost(Protocol):
    """What the long-lived steps need of the workflow instance (`workflows.RunWorkflow`)."""

    inbox: list[PendingSignal]
    current_wait: CurrentWait | None
    # event ids this run consumed (SPEC §5.4: at most once per run)
    consumed_event_ids: list[str]
    # control.callWorkflow: the latest child run per step execution (`retryOfRunId` of the next)
    child_runs: dict[str, str]


def host() -> WaitHost:
    return cast(WaitHost, workflow.instance())


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
        # a failed local activity surfaces as ActivityError(cause) or, once its retries are
        # exhausted or it is non-retryable, as the cause itself
        cause = err.cause if isinstance(err, ActivityError) else err
        if isinstance(cause, CancelledError):
            raise asyncio.CancelledError() from None
        if isinstance(cause, ApplicationError):
            detail = cause.details[0] if cause.details else None
            code = detail.get("code") if isinstance(detail, dict) else None
            raise StepError(
                cause.type or ErrorCategory.TRANSIENT, cause.message, code=code, details=detail
            ) from None
        raise StepError(ErrorCategory.TRANSIENT, str(cause or err)) from None


def take_signal(kind: str, accept: Callable[[Any], bool]) -> Any | None:
    """Remove and return the body of the first inbox entry of `kind` that `accept`s, if any."""
    inbox = host().inbox
    for index, entry in enumerate(inbox):
        if entry.kind == kind and accept(entry.body):
            del inbox[index]
            return entry.body
    return None


def drop_signals(kind: str, match: Callable[[Any], bool]) -> None:
    """Forget every inbox entry of `kind` that `match`es (e.g. a second completion of a task)."""
    inbox = host().inbox
    inbox[:] = [entry for entry in inbox if not (entry.kind == kind and match(entry.body))]


def drop_consumed_events() -> None:
    """Forget inbox events this run already consumed (a second delivery of the same event)."""
    state = host()
    consumed = set(state.consumed_event_ids)
    state.inbox[:] = [
        entry
        for entry in state.inbox
        if not (entry.kind == "event" and _event_id(entry.body) in consumed)
    ]


def _event_id(body: Any) -> Any:
    return body.get("eventId") if isinstance(body, dict) else None


def mark_consumed(event_id: str) -> None:
    state = host()
    if event_id not in state.consumed_event_ids:
        state.consumed_event_ids.append(event_id)
    drop_consumed_events()


@contextmanager
def waiting_on(wait: CurrentWait) -> Iterator[None]:
    """Publish the current wait (for queries) while a step blocks."""
    host().current_wait = wait
    try:
        yield
    finally:
        host().current_wait = None


def evaluate_with(
    interp: Interpreter, value: Any, at: At, extra: Mapping[str, Any], *, what: str
) -> Any:
    """Evaluate with names added to the expression context (e.g. `childRun`); undefined fails."""
    context = {**interp.scopes.context(at.frame), **extra}
    try:
        result = resolve_value(value, context, now_iso=lambda: iso(workflow.now()))
    except ExpressionError as exc:
        raise expression_failure(exc, at.path) from None
    if result is UNDEFINED:
        source = value.get("$expr") if isinstance(value, dict) else repr(value)
        raise StepError(
            ErrorCategory.EXPRESSION,
            f"{what} evaluated to undefined at {at.path} (expression: {source})",
            code="UNDEFINED_RESULT",
            details={"expression": source},
            node_path=at.path,
        )
    return result


def apply_assign(interp: Interpreter, assign: Mapping[str, Any] | None, at: At) -> None:
    """A wait step's `assign`: in order, each sees the earlier ones (as transform.assign)."""
    for target, value in (assign or {}).items():
        result = interp.evaluate(value, at, what=f"assign {target!r}")
        interp.scopes.assign(target, result, at.frame, path=at.path)


def as_key(value: Any) -> str | None:
    """A correlation key as the router compares it: strings as they are, other JSON as text."""
    if value is None or value is UNDEFINED:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def iso(moment: Any) -> str:
    """ISO 8601 UTC with milliseconds and `Z` (the format of `nowIso()`)."""
    return str(moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
