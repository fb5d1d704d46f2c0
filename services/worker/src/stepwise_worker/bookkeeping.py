"""Workflow-side projection writes: step rows and the run row, as local activities (SPEC §5).

A step's completion is not written on its own: it is buffered and travels with the next write,
which comes at once (the next step's start, or the run's completion). So a step costs one local
activity round trip, not two. Code that is about to block durably (a retry backoff, a wait)
calls `flush()` first so the rows do not lag behind reality while the run sleeps.

Step ids come from `workflow.uuid4()` (deterministic), which makes every write idempotent
(`ON CONFLICT DO NOTHING` / plain updates): a local activity re-executed after a worker crash
changes nothing.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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
from stepwise_worker.quota import pause_until_resumed

# Projections must not fail a run because Postgres blinked: retry until it is back.
PROJECTION_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=0,
)
PROJECTION_TIMEOUT = timedelta(seconds=30)


class Bookkeeper:
    def __init__(self, *, tenant_id: str, run_id: str) -> None:
        self.tenant_id = tenant_id
        self.run_id = run_id
        self._done: list[StepDone] = []
        self._logs: list[LogLine] = []
        self.steps_started = 0

    def _take(self) -> tuple[list[StepDone], list[LogLine]]:
        done, logs = self._done, self._logs
        self._done, self._logs = [], []
        return done, logs

    async def _record(self, start: StepStart | None) -> Recorded:
        done, logs = self._take()
        recorded: Recorded = await workflow.execute_local_activity(
            RECORD_STEPS,
            StepBatch(
                tenant_id=self.tenant_id, run_id=self.run_id, done=done, start=start, logs=logs
            ),
            result_type=Recorded,
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
        )
        return recorded

    async def start_step(
        self, *, step_path: str, definition_step_id: str, step_type: str, attempt: int
    ) -> str:
        """Insert the `STARTED` row (and `workflow_runs.node_path`); returns the step id.

        The same statement reserves the step's quota unit; without capacity the run pauses
        (worker part 2, `quota.py`) and the start is retried when it is resumed (SPEC §5.5).
        """
        step_id = str(workflow.uuid4())
        self.steps_started += 1
        while True:
            recorded = await self._record(
                StepStart(
                    step_id=step_id,
                    step_path=step_path,
                    definition_step_id=definition_step_id,
                    step_type=step_type,
                    attempt=attempt,
                )
            )
            if recorded.quota is None:
                return step_id
            await pause_until_resumed(
                tenant_id=self.tenant_id,
                run_id=self.run_id,
                step_path=step_path,
                reservation=recorded.quota,
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
        """Write buffered completions and logs now (before blocking durably)."""
        if self.pending:
            await self._record(None)

    async def complete_run(self, *, status: str, error: Any = None, result: Any = None) -> Recorded:
        """Final run row (and buffered step rows); returns the result as it may travel."""
        done, logs = self._take()
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
            ),
            result_type=Recorded,
            start_to_close_timeout=PROJECTION_TIMEOUT,
            retry_policy=PROJECTION_RETRY,
        )
        return recorded
