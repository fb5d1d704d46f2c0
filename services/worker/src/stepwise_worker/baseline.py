"""The physical floor for the step-overhead benchmark (SPEC §11): hand-written workflows that run
the same 10 echo activities as a 10-step `core.echo` definition, with none of the interpreter,
projections or ledger. One with regular activities, one with local activities.

They run on their own task queue (`BASELINE_TASK_QUEUE`) with the same worker settings as the
interpreter; `make bench` and `test_interp_overhead.py` compare against them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from temporalio import activity, workflow

BASELINE_TASK_QUEUE: Final = "stepwise-bench-baseline"
ECHO_TIMEOUT: Final = timedelta(seconds=30)


@activity.defn(name="bench.echo")
async def echo(value: Any) -> Any:
    return {"value": value}


@workflow.defn(name="BenchRegularEcho")
class RegularEcho:
    @workflow.run
    async def run(self, steps: int) -> int:
        for index in range(steps):
            await workflow.execute_activity(echo, index, start_to_close_timeout=ECHO_TIMEOUT)
        return steps


@workflow.defn(name="BenchLocalEcho")
class LocalEcho:
    @workflow.run
    async def run(self, steps: int) -> int:
        for index in range(steps):
            await workflow.execute_local_activity(echo, index, start_to_close_timeout=ECHO_TIMEOUT)
        return steps
