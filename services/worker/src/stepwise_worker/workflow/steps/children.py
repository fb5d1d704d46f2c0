"""`control.callWorkflow` (SPEC §3): a child run, executed as a Temporal child workflow.

The child gets its own run row first (`parent_run_id`, `root_run_id`, pinned version: the given one
or the latest published), then starts as a child workflow of the SAME workflow type on the same
task queue, with workflow id `workflow_id_for(child_run_id)`. The parent waits for its `RunResult`;
`outputMapping` sees `childRun.{payload, vars, meta}`.

A failed child is a catchable `ChildWorkflowError`. The step's retry policy (applied by the
interpreter around this handler) starts a NEW child run per attempt, with
`trigger_metadata_json.retryOfRunId` = the previous attempt's run (SPEC §3; the reference re-ran
the same child run id, which would reuse a closed workflow id and mix two attempts in one row).

Cancelling the parent cancels the child: Temporal sends the child a cancel request
(`WAIT_CANCELLATION_COMPLETED`, so the child's own cleanup marks its row `CANCELED` before the
parent finishes), and `ParentClosePolicy.REQUEST_CANCEL` covers a parent that closes any other way
(terminated, timed out) — a terminated child would leave its row `RUNNING` forever.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from stepwise_contract import dsl
from stepwise_contract.enums import ErrorCategory, RunStatus
from stepwise_contract.names import DEFAULT_EXECUTION_TIMEOUT_S, TASK_QUEUE, WORKFLOW_TYPE
from stepwise_contract.payloads import RunInput, RunResult
from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError, ChildWorkflowError

from stepwise_worker.step_errors import StepError
from stepwise_worker.wait_messages import (
    CHILD_RUN_STARTED,
    CREATE_CHILD_RUN,
    ChildRunCreated,
    ChildRunStarted,
    CreateChildRun,
    Done,
)
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.scopes import check_json_limits
from stepwise_worker.workflow.step_context import StepContext
from stepwise_worker.workflow.store_calls import local


def attempt_key(at: At) -> str:
    """One step execution: its path plus the forEach item indices around it."""
    return at.path + "".join(f"#{i}" for i in at.item_keys)


def _cause_json(err: ChildWorkflowError) -> Any:
    """The child's own `error_json` when it failed as a run, else the Temporal failure text."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        detail = cause.details[0] if cause.details else None
        if isinstance(detail, dict) and "category" in detail:
            return detail
        return {"message": cause.message, "type": cause.type}
    return {"message": str(cause or err)}


async def call_workflow(ctx: StepContext, step: dsl.ControlCallWorkflow, at: At) -> None:
    run = ctx.run_input
    payload = await ctx.evaluate_mapping(step.input_mapping or {}, at, what="inputMapping")
    check_json_limits(payload, what="the child workflow's input", path=at.path)
    root_run_id = run.root_run_id or run.run_id
    children = ctx.child_runs
    key = attempt_key(at)
    retry_of = children.get(key) if at.attempt > 1 else None
    child_run_id = str(workflow.uuid4())
    created = await local(
        CREATE_CHILD_RUN,
        CreateChildRun(
            tenant_id=run.tenant_id,
            parent_run_id=run.run_id,
            root_run_id=root_run_id,
            parent_step_path=at.path,
            child_run_id=child_run_id,
            workflow_id=step.workflow_id,
            workflow_version=step.workflow_version,
            payload=payload,
            retry_of_run_id=retry_of,
        ),
        ChildRunCreated,
    )
    children[key] = child_run_id
    details = {
        "workflowId": created.workflow_id,
        "workflowVersion": created.workflow_version,
        "childRunId": child_run_id,
        "rootRunId": root_run_id,
    }
    await ctx.book.flush()
    child_input = RunInput(
        run_id=child_run_id,
        tenant_id=run.tenant_id,
        workflow_id=created.workflow_id,
        workflow_version=created.workflow_version,
        trigger_type=None,
        execution_key=f"{run.execution_key or run.run_id}:child:{child_run_id}",
        parent_run_id=run.run_id,
        root_run_id=root_run_id,
        # the parent's: a replay of the parent starts the child with the input it first sent
        commands=run.commands,
    )
    try:
        handle = await workflow.start_child_workflow(
            WORKFLOW_TYPE,
            child_input,
            id=created.temporal_workflow_id,
            task_queue=TASK_QUEUE,
            result_type=RunResult,
            execution_timeout=timedelta(seconds=DEFAULT_EXECUTION_TIMEOUT_S),
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            cancellation_type=workflow.ChildWorkflowCancellationType.WAIT_CANCELLATION_COMPLETED,
        )
        started = handle.first_execution_run_id
        if started is not None:
            await local(
                CHILD_RUN_STARTED,
                ChildRunStarted(tenant_id=run.tenant_id, child_run_id=child_run_id,
                                temporal_run_id=started),
                Done,
            )  # fmt: skip
        result: RunResult = await handle
    except ChildWorkflowError as err:
        if isinstance(err.cause, CancelledError) and workflow.cancellation_reason() is not None:
            raise asyncio.CancelledError() from None  # the parent is being cancelled
        raise StepError(
            ErrorCategory.CHILD,
            "Child workflow execution failed",
            code="CHILD_WORKFLOW_FAILED",
            details={**details, "cause": _cause_json(err)},
            node_path=at.path,
        ) from None
    if result.status != RunStatus.SUCCEEDED:  # a child never returns otherwise; be explicit
        raise StepError(
            ErrorCategory.CHILD,
            f"Child run ended {result.status}",
            code="CHILD_WORKFLOW_FAILED",
            details=details,
            node_path=at.path,
        )
    child_scopes = {
        "childRun": {"payload": result.payload, "vars": result.vars, "meta": result.meta}
    }
    for target, value in (step.output_mapping or {}).items():
        out = await ctx.evaluate(value, at, what=f"outputMapping {target!r}", extra=child_scopes)
        ctx.scopes.assign(target, out, at.frame, path=at.path)
