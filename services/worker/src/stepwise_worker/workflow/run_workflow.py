"""The interpreter workflow: one Temporal workflow type runs every Stepwise run (SPEC §5).

It loads the pinned definition once, interprets it (`interpreter.py`) and projects every step and
the run's outcome into Postgres. Signals only append to an inbox held in workflow state; the wait
steps consume it. A failed run fails the Temporal workflow too (non-retryable, with the run's
`error_json` as details) so the Temporal UI tells the same story as the run row.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    import msgspec
    from stepwise_contract import dsl
    from stepwise_contract.enums import ErrorCategory, RunStatus
    from stepwise_contract.names import (
        QUERY_CURRENT_STEP,
        QUERY_CURRENT_WAIT,
        QUERY_SUMMARY,
        SIGNAL_EVENT,
        SIGNAL_HUMAN_TASK,
        SIGNAL_QUOTA_RESUME,
        WORKFLOW_TYPE,
    )
    from stepwise_contract.payloads import (
        CurrentStep,
        CurrentWait,
        InterpreterSummary,
        PendingEvent,
        PendingHumanTask,
        PendingQuotaResume,
        RunInput,
        RunResult,
    )

    from stepwise_worker.messages import LOAD_RUN, LoadedRun, LoadRun, action_infos
    from stepwise_worker.step_errors import ReturnSignal, StepError, failure_from_activity
    from stepwise_worker.workflow.bookkeeping import PROJECTION_RETRY, Bookkeeper
    from stepwise_worker.workflow.cancellation import is_run_cancellation, record_cancellation
    from stepwise_worker.workflow.checkpoint import restore_inbox, restore_interpreter
    from stepwise_worker.workflow.dispatch import HANDLERS
    from stepwise_worker.workflow.inbox import Inbox
    from stepwise_worker.workflow.interpreter import Interpreter, now_iso
    from stepwise_worker.workflow.patches import PRELOADED_RUN, RunPatches
    from stepwise_worker.workflow.scopes import Scopes

LOAD_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name=WORKFLOW_TYPE)
class RunWorkflow:
    def __init__(self) -> None:
        self.inbox = Inbox()
        self.interp: Interpreter | None = None
        self.run_id = ""
        self.status: str = RunStatus.RUNNING

    @workflow.run
    async def run(self, run: RunInput) -> RunResult:
        self.run_id = run.run_id
        book = Bookkeeper(tenant_id=run.tenant_id, run_id=run.run_id, inbox=self.inbox)
        if run.checkpoint is not None:  # continued as new: signals buffered before come first
            restore_inbox(self.inbox, run.checkpoint)
        completing = False
        try:
            try:
                interp = await self._load(run, book, RunPatches(run.commands))
                if run.checkpoint is not None:
                    restore_interpreter(interp, run.checkpoint)
                self.interp = interp
                await interp.run()
            except ReturnSignal:
                pass
            except StepError as err:
                err.locate(err.node_path or "root", now_iso())
                completing = True
                await self._fail(book, err)
            completing = True
            return await self._succeed(book)
        except BaseException as err:
            # Temporal cancelled the run (cancellation.py): project it, re-raise
            if not is_run_cancellation(err):
                raise
            # A completion with a held start may pause for quota, so a cancel can land in it;
            # runs before that change re-raised there (a replay must issue the same commands).
            if completing and not (self.interp is not None and self.interp.hold_last_start):
                raise
            current = self.interp.current_step if self.interp is not None else None
            await record_cancellation(
                tenant_id=run.tenant_id,
                run_id=run.run_id,
                node_path=current.step_path if current is not None else None,
                flush=book.flush,
            )
            self.status = RunStatus.CANCELED
            raise

    async def _load(self, run: RunInput, book: Bookkeeper, patches: RunPatches) -> Interpreter:
        loaded = await self._loaded(run, patches)
        try:
            definition = dsl.decode_definition(loaded.definition)
        except msgspec.ValidationError as exc:
            raise StepError(
                ErrorCategory.VALIDATION,
                f"the pinned definition cannot be decoded: {exc}",
                code="INVALID_WORKFLOW_DEFINITION",
            ) from None
        scopes = Scopes.initial(
            payload=loaded.payload,
            run_id=run.run_id,
            workflow_id=run.workflow_id,
            workflow_version=run.workflow_version,
            tenant_id=run.tenant_id,
            definition_hash=loaded.definition_hash,
        )
        return Interpreter(
            run=run,
            definition=definition,
            scopes=scopes,
            actions=loaded.actions,
            book=book,
            inbox=self.inbox,
            handlers=HANDLERS,
            patches=patches,
        )

    async def _loaded(self, run: RunInput, patches: RunPatches) -> LoadedRun:
        """The run as its starter sent it, or loaded from Postgres (one local activity)."""
        # The patch: a history whose first task ran on a worker that loaded despite a preloaded
        # input replays on the loading path.
        preloaded = run.preloaded
        if preloaded is not None and patches.has(PRELOADED_RUN):
            return LoadedRun(
                definition=preloaded.definition,
                definition_hash=preloaded.definition_hash,
                payload=preloaded.payload,
                actions=action_infos(preloaded.actions),
            )
        try:
            loaded: LoadedRun = await workflow.execute_local_activity(
                LOAD_RUN,
                LoadRun(
                    tenant_id=run.tenant_id,
                    run_id=run.run_id,
                    workflow_id=run.workflow_id,
                    workflow_version=run.workflow_version,
                ),
                result_type=LoadedRun,
                start_to_close_timeout=LOAD_TIMEOUT,
                retry_policy=PROJECTION_RETRY,
            )
        except FailureError as err:
            raise failure_from_activity(err) from None
        return loaded

    def _result(self, status: str, error: Any = None) -> RunResult:
        scopes = self.interp.scopes if self.interp is not None else None
        return RunResult(
            run_id=self.run_id,
            status=RunStatus(status),
            payload=scopes.payload if scopes else None,
            vars=scopes.vars if scopes else None,
            meta=scopes.meta if scopes else None,
            error=error,
        )

    async def _succeed(self, book: Bookkeeper) -> RunResult:
        result = self._result(RunStatus.SUCCEEDED)
        book.log("INFO", "Run succeeded")
        recorded = await book.complete_run(
            status=RunStatus.SUCCEEDED,
            result={"payload": result.payload, "vars": result.vars, "meta": result.meta},
        )
        self.status = RunStatus.SUCCEEDED
        if recorded.result_externalized:
            # only in runs recorded before the claim-check codec (placeholders in the result)
            small = recorded.result if isinstance(recorded.result, dict) else {}
            result = RunResult(
                run_id=self.run_id,
                status=RunStatus.SUCCEEDED,
                payload=small.get("payload"),
                vars=small.get("vars"),
                meta=small.get("meta"),
            )
        return result

    async def _fail(self, book: Bookkeeper, err: StepError) -> NoReturn:
        error = err.to_json()
        book.log("ERROR", f"Run failed: {err.message}", step_path=err.node_path, context=error)
        await book.complete_run(status=RunStatus.FAILED, error=error)
        self.status = RunStatus.FAILED
        raise ApplicationError(
            err.message, error, type=f"WorkflowRuntimeV2.{err.category}", non_retryable=True
        )

    # -- signals: decoded as their inbox types and only buffered here; the steps consume them ---

    @workflow.signal(name=SIGNAL_EVENT)
    def on_event(self, signal: PendingEvent) -> None:
        self.inbox.add(signal)

    @workflow.signal(name=SIGNAL_HUMAN_TASK)
    def on_human_task(self, signal: PendingHumanTask) -> None:
        self.inbox.add(signal)

    @workflow.signal(name=SIGNAL_QUOTA_RESUME)
    def on_quota_resume(self, signal: PendingQuotaResume) -> None:
        self.inbox.add(signal)

    # -- queries -------------------------------------------------------------------------------

    @workflow.query(name=QUERY_CURRENT_STEP)
    def current_step(self) -> CurrentStep:
        if self.interp is None or self.interp.current_step is None:
            return CurrentStep()
        return self.interp.current_step

    @workflow.query(name=QUERY_CURRENT_WAIT)
    def current_wait_query(self) -> CurrentWait:
        return self.inbox.current_wait or CurrentWait()

    @workflow.query(name=QUERY_SUMMARY)
    def summary(self) -> InterpreterSummary:
        return InterpreterSummary(
            run_id=self.run_id,
            status=self.status,
            steps_executed=self.interp.steps_executed if self.interp else 0,
            current_step=self.current_step(),
            current_wait=self.inbox.current_wait,
            pending_signals=len(self.inbox.signals),
        )
