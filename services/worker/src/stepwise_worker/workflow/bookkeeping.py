"""Workflow-side projection writes: step rows and the run row, as local activities (SPEC §5).

A step's completion is not written on its own: it is buffered and travels with the next write,
which comes at once (the next step's start, or the run's completion). So a step costs one local
activity round trip, not two. Code that is about to block durably (a retry backoff, a wait)
calls `flush()` first so the rows do not lag behind reality while the run sleeps.

A data step that ends the run (`hold_start`) costs no round trip of its own: its row, its quota
unit and the run's completion are one statement. Such a step has no effect outside the workflow,
so running it before its unit is reserved changes nothing anyone sees; when the statement finds
no capacity, neither the step nor the run is written, and the run pauses at that step and
completes when resumed (SPEC §5.5).

Step ids come from `workflow.uuid4()` (deterministic), which makes every write idempotent
(`ON CONFLICT DO NOTHING` / plain updates): a local activity re-executed after a worker crash
changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from temporalio import workflow
from temporalio.common import RetryPolicy

from stepwise_worker.messages import (
    COMPLETE_RUN,
    RECORD_STEPS,
    LogLine,
    Recorded,
    RunDone,
    StepBatch,
    StepDone,
    StepStart,
)
from stepwise_worker.wait_messages import QuotaReservation
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.quota_pause import pause_until_resumed

# Projections must not fail a run because Postgres blinked: retry until it is back.
PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
PROJECTION_TIMEOUT = timedelta(seconds=30)


class DeferredStart(msgspec.Struct, frozen=True, kw_only=True):
    step_id: str
    batch: StepBatch


class Bookkeeper:
    def __init__(self, *, tenant_id: str, run_id: str, inbox: Inbox) -> None:
        self.tenant_id = tenant_id
        self.run_id = run_id
        # where a quota pause waits for its resume signal
        self._inbox = inbox
        self._done: list[StepDone] = []
        self._logs: list[LogLine] = []
        # the start of a data step that ends the run, until a write carries it (`hold_start`)
        self._held: StepStart | None = None
        self.steps_started = 0

    def _take(self) -> tuple[list[StepDone], list[LogLine]]:
        done, logs = self._done, self._logs
        self._done, self._logs = [], []
        return done, logs

    async def _record(self, start: StepStart | None) -> Recorded:
        done, logs = self._take()
        return await self._write(
            StepBatch(
                tenant_id=self.tenant_id, run_id=self.run_id, done=done, start=start, logs=logs
            )
        )

    def hold_start(
        self, *, step_path: str, definition_step_id: str, step_type: str, attempt: int
    ) -> str:
        """A data step that ends the run: its row is written, completed, by `complete_run` (or
        by a cancellation's `flush`); returns the step id."""
        self._held = self._new_start(
            step_path=step_path,
            definition_step_id=definition_step_id,
            step_type=step_type,
            attempt=attempt,
        )
        return self._held.step_id

    def _new_start(
        self,
        *,
        step_path: str,
        definition_step_id: str,
        step_type: str,
        attempt: int,
        step_id: str | None = None,
    ) -> StepStart:
        """A step's start (a new id unless given), counted as started."""
        self.steps_started += 1
        return StepStart(
            step_id=step_id or str(workflow.uuid4()),
            step_path=step_path,
            definition_step_id=definition_step_id,
            step_type=step_type,
            attempt=attempt,
        )

    async def _write(self, batch: StepBatch) -> Recorded:
        recorded: Recorded = await workflow.execute_local_activity(
            RECORD_STEPS,
            batch,
            result_type=Recorded,
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
        )
        return recorded

    async def start_step(
        self,
        *,
        step_path: str,
        definition_step_id: str,
        step_type: str,
        attempt: int,
        step_id: str | None = None,
    ) -> str:
        """Insert the `STARTED` row (and `workflow_runs.node_path`); returns the step id.

        The same statement reserves the step's quota unit; without capacity the run pauses
        (`quota_pause.py`) and the start is retried when it is resumed (SPEC §5.5).
        """
        deferred = self.defer_start(
            step_path=step_path,
            definition_step_id=definition_step_id,
            step_type=step_type,
            attempt=attempt,
            step_id=step_id,
        )
        await self.commit_deferred(deferred)
        return deferred.step_id

    def defer_start(
        self,
        *,
        step_path: str,
        definition_step_id: str,
        step_type: str,
        attempt: int,
        step_id: str | None = None,
    ) -> DeferredStart:
        """The start row (with buffered completions and logs) to be written by someone else:
        an action activity carries it, saving the step its own local activity (SPEC §11)."""
        start = self._new_start(
            step_path=step_path,
            definition_step_id=definition_step_id,
            step_type=step_type,
            attempt=attempt,
            step_id=step_id,
        )
        done, logs = self._take()
        batch = StepBatch(
            tenant_id=self.tenant_id, run_id=self.run_id, done=done, start=start, logs=logs
        )
        return DeferredStart(step_id=start.step_id, batch=batch)

    async def commit_deferred(self, deferred: DeferredStart) -> None:
        """Write a deferred start now; pause for quota until it gets its unit (idempotent)."""
        recorded = await self._write(deferred.batch)
        while recorded.quota is not None:
            await self.pause_for_quota(deferred, recorded.quota)
            recorded = await self._write(self.retry_batch(deferred))

    def retry_batch(self, deferred: DeferredStart) -> StepBatch:
        """The start again (after a quota pause), with whatever was buffered meanwhile."""
        done, logs = self._take()
        return StepBatch(
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            done=done,
            start=deferred.batch.start,
            logs=logs,
        )

    async def pause_for_quota(self, deferred: DeferredStart, reservation: QuotaReservation) -> None:
        assert deferred.batch.start is not None
        await pause_until_resumed(
            self._inbox,
            tenant_id=self.tenant_id,
            run_id=self.run_id,
            step_path=deferred.batch.start.step_path,
            reservation=reservation,
        )

    def finish_step(self, step_id: str, status: str, error: Any = None) -> None:
        """Buffer a step's completion; written with the next projection."""
        self._done.append(StepDone(step_id=step_id, status=status, error=error))

    def log(
        self, level: str, message: str, *, step_path: str | None = None, context: Any = None
    ) -> None:
        self._logs.append(
            LogLine(level=level, message=message, step_path=step_path, context=context)
        )

    @property
    def pending(self) -> bool:
        return bool(self._done or self._logs)

    async def flush(self) -> None:
        """Write buffered completions and logs now (before blocking durably). A held start goes
        with them; without capacity for it, it is not written (only a cancellation flushes then)."""
        if self._held is not None:
            held, self._held = self._held, None
            await self._record(held)
        elif self.pending:
            await self._record(None)

    async def complete_run(self, *, status: str, error: Any = None, result: Any = None) -> Recorded:
        """Final run row (and buffered step rows); returns the result as it may travel.

        With a held start the same statement reserves its quota unit. Without capacity it writes
        only the other buffered rows; the run pauses (`quota_pause.py`) and tries again."""
        while True:
            done, logs = self._take()
            held = self._held
            recorded: Recorded = await workflow.execute_local_activity(
                COMPLETE_RUN,
                RunDone(
                    tenant_id=self.tenant_id,
                    run_id=self.run_id,
                    status=status,
                    error=error,
                    result=result,
                    done=done,
                    logs=logs,
                    start=held,
                ),
                result_type=Recorded,
                start_to_close_timeout=PROJECTION_TIMEOUT,
                retry_policy=PROJECTION_RETRY,
            )
            if recorded.quota is None or held is None:
                self._held = None
                return recorded
            # the held step's completion waits for its unit (a cancellation's flush takes it)
            self._done[:0] = [item for item in done if item.step_id == held.step_id]
            await pause_until_resumed(
                self._inbox,
                tenant_id=self.tenant_id,
                run_id=self.run_id,
                step_path=held.step_path,
                reservation=recorded.quota,
            )
