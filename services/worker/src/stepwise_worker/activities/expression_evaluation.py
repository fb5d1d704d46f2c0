"""Expressions that ran out of the inline budget, evaluated in a pool of separate processes.

Inside workflow code every evaluation gets a small budget (`INLINE_COSTS`, a few milliseconds of
CPU) so that no tenant's expression holds a worker thread that every tenant shares. One that runs
out of it is sent here: a child process evaluates it with the large budget (`OFFLOADED_COSTS`),
on its own interpreter lock, so the worker's workflow tasks keep running meanwhile. The budget is
counted, never timed, so the outcome is the same on every attempt.
"""

from __future__ import annotations

import asyncio
import atexit
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from stepwise_contract.expression_budget import OFFLOADED_COSTS
from stepwise_contract.expressions import UNDEFINED, ExpressionError, resolve_value
from temporalio import activity

from stepwise_worker.evaluation_messages import (
    EVALUATE_EXPRESSION,
    EvaluatedExpression,
    EvaluateExpression,
)


def evaluate_in_child(request: EvaluateExpression) -> EvaluatedExpression:
    """Runs in a child process (a module-level function, so the pool can pickle it)."""
    try:
        result = resolve_value(
            request.value,
            request.context,
            now_iso=lambda: request.now_iso,
            max_result_bytes=request.max_result_bytes,
            costs=OFFLOADED_COSTS,
        )
    except ExpressionError as exc:
        return EvaluatedExpression(error=exc.message, source=exc.source)
    if result is UNDEFINED:
        return EvaluatedExpression(defined=False)
    return EvaluatedExpression(value=result)


# The children run below the worker's own CPU priority: an expression that needs the large budget
# is one tenant's heavy (or hostile) work, and on a machine with every core busy it should take
# the CPU other tenants' workflow tasks leave idle, not an equal share beside them. At nice 10 a
# child still gets about a tenth of a contended core, so it always finishes.
DEFAULT_NICENESS = 10


def _lower_priority(niceness: int) -> None:
    """Pool initializer: runs once in each child before its first request."""
    os.nice(niceness)


def _warm() -> None:
    """Imports the evaluator in a fresh child before the first real request needs it."""
    evaluate_in_child(
        EvaluateExpression(value={"$expr": "1 + 1"}, context={}, now_iso="", max_result_bytes=64)
    )


class ExpressionEvaluator:
    """Owns the process pool; `close()` it when the worker stops."""

    def __init__(self, processes: int, *, niceness: int = DEFAULT_NICENESS) -> None:
        self._processes = max(1, processes)
        self._niceness = niceness
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: the worker process runs threads (Temporal's core, the pool's own)
            self._pool = ProcessPoolExecutor(
                max_workers=self._processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_lower_priority,
                initargs=(self._niceness,),
            )
        return self._pool

    async def start(self) -> None:
        """Starts the children now, so the first offloaded expression does not pay for it."""
        loop = asyncio.get_running_loop()
        pool = self._executor()
        await asyncio.gather(*(loop.run_in_executor(pool, _warm) for _ in range(self._processes)))

    @activity.defn(name=EVALUATE_EXPRESSION)
    async def evaluate_expression(self, request: EvaluateExpression) -> EvaluatedExpression:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor(), evaluate_in_child, request)
        except BrokenProcessPool:
            # a child died (killed, out of memory): the next attempt gets a fresh pool
            self.close()
            raise

    def activities(self) -> list[Any]:
        return [self.evaluate_expression]

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_shared: ExpressionEvaluator | None = None


def shared_evaluator() -> ExpressionEvaluator:
    """One single-process evaluator for every worker built in this process without one of its
    own (tests build many workers); closed when the interpreter exits."""
    global _shared
    if _shared is None:
        _shared = ExpressionEvaluator(1)
        atexit.register(_shared.close)
    return _shared
