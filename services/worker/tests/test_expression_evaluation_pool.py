"""The process pool behind the second stage of expression evaluation (no servers needed)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os

import pytest
from stepwise_contract.platform.settings import SettingsError
from stepwise_worker.activities.expression_evaluation import DEFAULT_NICENESS, ExpressionEvaluator
from stepwise_worker.evaluation_messages import EvaluateExpression
from stepwise_worker.settings import Settings


def _children() -> set[int]:
    return {p.pid for p in multiprocessing.active_children() if p.pid is not None}


async def test_children_evaluate_below_the_workers_cpu_priority() -> None:
    before = _children()
    evaluator = ExpressionEvaluator(2)
    try:
        await evaluator.start()
        children = _children() - before
        assert len(children) == 2
        # capped at 19 when the test itself already runs niced
        wanted = min(os.getpriority(os.PRIO_PROCESS, 0) + DEFAULT_NICENESS, 19)
        # a child lowers its priority as it starts, before its first request, but `start` may
        # have warmed both on one child while the other was still importing
        for _ in range(300):
            found = {os.getpriority(os.PRIO_PROCESS, pid) for pid in children}
            if found == {wanted}:
                break
            await asyncio.sleep(0.1)
        assert found == {wanted}
        # and they still answer
        answer = await evaluator.evaluate_expression(
            EvaluateExpression(
                value={"$expr": "$sum([1..100])"}, context={}, now_iso="", max_result_bytes=64
            )
        )
        assert answer.value == 5050
    finally:
        evaluator.close()


def test_the_niceness_is_a_setting_within_what_linux_allows() -> None:
    base = {"DATABASE_URL": "postgresql://x/y"}
    assert Settings.from_env(base).expression_niceness == DEFAULT_NICENESS
    assert (
        Settings.from_env({**base, "STEPWISE_WORKER_EXPRESSION_NICENESS": "0"}).expression_niceness
        == 0
    )
    for wrong in ("-5", "20", "low"):
        with pytest.raises(SettingsError, match="STEPWISE_WORKER_EXPRESSION_NICENESS"):
            Settings.from_env({**base, "STEPWISE_WORKER_EXPRESSION_NICENESS": wrong})
