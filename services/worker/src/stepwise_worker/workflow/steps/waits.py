"""Wait steps (SPEC §3, §5.4): `event.wait`, `time.wait`, `human.task`.

Each writes its wait row (the routing index the router signals through) before it blocks, then
blocks durably on Temporal: a condition over the signal inbox and/or a timer. A run waiting here
stays `RUNNING` with its step row `STARTED` and one open wait.

`event.wait` order: wait row, then the inbox (signals already received), then the recent-event
buffer (an event published just before the row existed), then block. Each event id is consumed at
most once per run.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from stepwise_contract import dsl
from stepwise_contract.enums import ErrorCategory, WaitType
from stepwise_contract.expressions import UNDEFINED
from stepwise_contract.payloads import (
    CurrentWait,
    EventSignal,
    HumanTaskSignal,
    PendingEvent,
    PendingHumanTask,
)
from stepwise_contract.schemas import InvalidSchemaError, validate_instance
from temporalio import workflow

from stepwise_worker.step_errors import StepError
from stepwise_worker.wait_messages import (
    CHECK_BUFFER,
    CREATE_HUMAN_TASK,
    OPEN_WAIT,
    RESOLVE_HUMAN_TASK,
    RESOLVE_WAIT,
    BufferCheck,
    BufferHit,
    CreateHumanTask,
    Done,
    OpenWait,
    ResolveHumanTask,
    ResolveWait,
    WaitOpened,
)
from stepwise_worker.workflow.filters import filters_pass
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.step_context import StepContext
from stepwise_worker.workflow.steps.data import assign_in_order
from stepwise_worker.workflow.store_calls import local

# What the API (and the router, for a `human.task.completed` event keyed by task id) sends.
HUMAN_TASK_EVENT = HumanTaskSignal(task_id="").event_name


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def as_key(value: Any) -> str | None:
    """A correlation key as the router compares it: strings as they are, other JSON as text."""
    if value is None or value is UNDEFINED:
        return None
    if isinstance(value, str):
        return value
    return msgspec.json.encode(value).decode()


def iso(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and `Z` (the format of `nowIso()`)."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# -- the wait row ------------------------------------------------------------------------------
# `event.wait` and `time.wait` open and resolve their row through these two, so both issue the
# same commands in the same order: the book's flush (if anything is buffered), then OPEN_WAIT;
# later one RESOLVE_WAIT. Recorded histories replay against that order, so keep it when editing.
# `human.task` writes its row with the task (CREATE_HUMAN_TASK / RESOLVE_HUMAN_TASK) instead.


async def _open_wait(
    ctx: StepContext,
    at: At,
    wait_id: str,
    wait_type: WaitType,
    *,
    timeout_at: datetime | None,
    payload: dict[str, Any],
    key: str | None = None,
    event_name: str | None = None,
) -> None:
    """Write the wait row before blocking; buffered step rows and logs go first, so what the run
    did before it parks is visible while it waits."""
    run = ctx.run_input
    row = OpenWait(tenant_id=run.tenant_id, run_id=run.run_id, wait_id=wait_id, step_path=at.path,
                   wait_type=wait_type, key=key, event_name=event_name, timeout_at=timeout_at,
                   payload=payload)  # fmt: skip
    await ctx.book.flush()
    await local(OPEN_WAIT, row, WaitOpened)


async def _resolve_wait(ctx: StepContext, wait_id: str, payload_patch: dict[str, Any]) -> None:
    """Close the wait row, merging `payload_patch` into its payload."""
    tenant_id = ctx.run_input.tenant_id
    await local(
        RESOLVE_WAIT,
        ResolveWait(tenant_id=tenant_id, wait_id=wait_id, payload_patch=payload_patch),
        Done,
    )


# -- event.wait --------------------------------------------------------------------------------


def _event_matcher(
    config: dsl.EventWaitConfig, key: str | None, inbox: Inbox
) -> Callable[[EventSignal], bool]:
    def accept(event: EventSignal) -> bool:
        return (
            not inbox.is_consumed(event.event_id)
            and event.event_name == config.event_name
            and (key is None or event.correlation_key == key)
            and filters_pass(config.filters, event.payload)
        )

    return accept


async def event_wait(ctx: StepContext, step: dsl.EventWait, at: At) -> None:
    config = step.config
    run = ctx.run_input
    key = None
    if config.correlation_key is not None:
        key = as_key(
            await ctx.evaluate(config.correlation_key, at, what="correlationKey", required=False)
        )
    timeout_at = None
    if config.timeout_ms is not None:
        timeout_at = workflow.now() + timedelta(milliseconds=config.timeout_ms)
    wait_id = str(workflow.uuid4())
    descriptor = {
        "eventName": config.event_name,
        "correlationKey": key,
        "filters": msgspec.to_builtins(config.filters),
        "timeoutAt": iso(timeout_at) if timeout_at else None,
    }
    await _open_wait(
        ctx,
        at,
        wait_id,
        WaitType.EVENT,
        timeout_at=timeout_at,
        payload=descriptor,
        key=key,
        event_name=config.event_name,
    )
    inbox = ctx.inbox
    inbox.drop_consumed_events()
    accept = _event_matcher(config, key, inbox)
    event: EventSignal | None = inbox.take(PendingEvent, accept)
    if event is None:
        hit = await local(
            CHECK_BUFFER,
            BufferCheck(
                tenant_id=run.tenant_id,
                run_id=run.run_id,
                event_name=config.event_name,
                correlation_key=key,
                filters=config.filters,
                consumed_event_ids=list(inbox.consumed_event_ids),
            ),
            BufferHit,
        )
        event = hit.event
    if event is None:
        wait = CurrentWait(wait_id=wait_id, wait_type=WaitType.EVENT, event_name=config.event_name,
                           key=key, step_path=at.path)  # fmt: skip
        with inbox.waiting_on(wait):
            event = await _block_for_event(inbox, accept, timeout_at)
        if event is None:
            await _resolve_wait(ctx, wait_id, {"matchedEventId": None, "timedOut": True})
            raise StepError(
                ErrorCategory.TIMEOUT,
                f"event.wait timed out waiting for {config.event_name}",
                code="EVENT_WAIT_TIMEOUT",
                details=descriptor,
                node_path=at.path,
            )
    inbox.mark_consumed(event.event_id)
    await _resolve_wait(
        ctx, wait_id, {"matchedEventId": event.event_id, "resolvedAt": iso(workflow.now())}
    )
    ctx.scopes.vars["event"] = event.payload
    ctx.scopes.vars["eventName"] = event.event_name
    await assign_in_order(ctx, config.assign, at)


async def _block_for_event(
    inbox: Inbox, accept: Callable[[EventSignal], bool], timeout_at: datetime | None
) -> EventSignal | None:
    """The first inbox event `accept`ed, or None when `timeout_at` passed first."""

    def arrived() -> bool:
        return inbox.has(PendingEvent, accept)

    if timeout_at is None:
        await workflow.wait_condition(arrived)
    else:
        remaining = (timeout_at - workflow.now()).total_seconds()
        if remaining <= 0 and not arrived():
            return None
        try:
            await workflow.wait_condition(arrived, timeout=max(remaining, 0.001))
        except TimeoutError:
            return None
    return inbox.take(PendingEvent, accept)


# -- time.wait ---------------------------------------------------------------------------------


def parse_instant(value: Any) -> datetime | None:
    """An `until` value: an ISO 8601 string (naive = UTC) or epoch milliseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    return None


async def time_wait(ctx: StepContext, step: dsl.TimeWait, at: At) -> None:
    config = step.config
    now = workflow.now()
    if config.mode == "duration":
        if config.duration_ms is None or config.duration_ms < 0:
            raise StepError(ErrorCategory.VALIDATION, "time.wait duration needs durationMs >= 0",
                            code="INVALID_CONFIG", node_path=at.path)  # fmt: skip
        due = now + timedelta(milliseconds=config.duration_ms)
    else:
        raw = await ctx.evaluate(config.until, at, what="until")
        parsed = parse_instant(raw)
        if parsed is None:
            raise StepError(
                ErrorCategory.VALIDATION,
                "time.wait until expression did not resolve to a valid date/time",
                code="INVALID_UNTIL",
                details={"until": raw},
                node_path=at.path,
            )
        due = parsed
    resumed = now
    if due > now:
        # A past instant continues at once, without a wait row: there is nothing to route.
        wait_id = str(workflow.uuid4())
        await _open_wait(
            ctx,
            at,
            wait_id,
            WaitType.TIME,
            timeout_at=due,
            payload={"mode": config.mode, "durationMs": config.duration_ms, "dueAt": iso(due)},
        )
        wait = CurrentWait(wait_id=wait_id, wait_type=WaitType.TIME, step_path=at.path)
        with ctx.inbox.waiting_on(wait):
            await workflow.sleep((due - now).total_seconds())
        resumed = workflow.now()
        await _resolve_wait(ctx, wait_id, {"resumedAt": iso(resumed)})
    ctx.scopes.vars["timeWait"] = {
        "mode": config.mode,
        "dueAt": iso(due),
        "resumedAt": iso(resumed),
    }
    await assign_in_order(ctx, config.assign, at)


# -- human.task --------------------------------------------------------------------------------


async def _optional(ctx: StepContext, value: Any, at: At, what: str) -> Any:
    if value is None:
        return None
    result = await ctx.evaluate(value, at, what=what, required=False)
    return None if result is UNDEFINED else result


async def human_task(ctx: StepContext, step: dsl.HumanTask, at: At) -> None:
    config = step.config
    run = ctx.run_input
    title = _text(await ctx.evaluate(config.title, at, what="title"))
    description = await _optional(ctx, config.description, at, "description")
    context_data = None
    if config.context_data is not None:
        context_data = {}
        for name, raw in config.context_data.items():
            value = await _optional(ctx, raw, at, f"contextData {name!r}")
            if value is not None:
                context_data[name] = value
    task_id, wait_id = str(workflow.uuid4()), str(workflow.uuid4())
    await ctx.book.flush()
    await local(
        CREATE_HUMAN_TASK,
        CreateHumanTask(
            tenant_id=run.tenant_id,
            run_id=run.run_id,
            step_path=at.path,
            task_id=task_id,
            wait_id=wait_id,
            event_name=HUMAN_TASK_EVENT,
            task_type=config.task_type,
            title=title,
            description=None if description is None else _text(description),
            context_data=context_data,
            form_schema=config.form_schema,
        ),
        WaitOpened,
    )

    def for_this_task(signal: HumanTaskSignal) -> bool:
        return signal.task_id == task_id

    wait = CurrentWait(wait_id=wait_id, wait_type=WaitType.HUMAN, event_name=HUMAN_TASK_EVENT,
                       key=task_id, step_path=at.path)  # fmt: skip
    inbox = ctx.inbox
    with inbox.waiting_on(wait):
        while True:
            await workflow.wait_condition(lambda: inbox.has(PendingHumanTask, for_this_task))
            signal = inbox.take(PendingHumanTask, for_this_task)
            assert signal is not None  # the condition above saw it
            response = signal.payload if signal.payload is not None else {}
            issues = _form_issues(config.form_schema, response, at)
            if not issues:
                inbox.drop(PendingHumanTask, for_this_task)  # a second completion has nothing to do
                break
            # The API validates before signalling; a response that still fails keeps the run
            # waiting for a valid one (it is logged, never applied).
            ctx.book.log(
                "WARN",
                "Human task response rejected: it does not match the form schema",
                step_path=at.path,
                context={"taskId": task_id, "errors": issues},
            )
    await local(
        RESOLVE_HUMAN_TASK,
        ResolveHumanTask(tenant_id=run.tenant_id, task_id=task_id, wait_id=wait_id,
                         event_name=signal.event_name, response=response),
        Done,
    )  # fmt: skip
    ctx.scopes.vars["event"] = response
    ctx.scopes.vars["eventName"] = signal.event_name
    await assign_in_order(ctx, config.assign, at)


def _form_issues(schema: Any, response: Any, at: At) -> list[dict[str, str]]:
    if schema is None:
        return []
    try:
        return [{"path": i.path, "message": i.message} for i in validate_instance(schema, response)]
    except InvalidSchemaError as exc:
        raise StepError(ErrorCategory.VALIDATION, f"human.task formSchema is invalid: {exc}",
                        code="INVALID_FORM_SCHEMA", node_path=at.path) from None  # fmt: skip
