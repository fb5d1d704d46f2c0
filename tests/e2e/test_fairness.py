"""Tenant fairness and run priority on the shared task queue, with the services as processes.

Each test builds a backlog with the worker stopped (noisy.py), starts the worker and watches the
order in which runs finish. The late-tenant test queues 1,000 runs of A, then 20 of B (the bench's
scenario at a third of its backlog: without fairness B would wait for all of A's) and discards
what is left of A's backlog once B is done, instead of draining it (most of a minute of CPU on a
2-core machine). The priority and weight tests use smaller backlogs: the order
does not depend on the backlog's size (first come, first served, a later run waits for all of it).
"""

from __future__ import annotations

import asyncpg
import pytest
from stepwise_devkit.bench.noisy import (
    all_succeeded,
    discard_unfinished,
    launch_many,
    succeeded,
    tenant_api,
    wait_until,
    worker_stopped,
)
from stepwise_devkit.stack import Stack

pytestmark = pytest.mark.e2e

FLOOD = 1_000  # tenant A's backlog
LATE = 20  # tenant B's runs, launched after A's backlog
PRIORITY_BACKLOG = 60
WEIGHTED_FLOOD = 200  # per tenant


async def test_a_late_tenant_is_not_queued_behind_a_flood(
    stack: Stack, stack_db: asyncpg.Pool
) -> None:
    async with (
        tenant_api(stack, stack_db, "flooder") as a,
        tenant_api(stack, stack_db, "late") as b,
    ):
        async with worker_stopped(stack):
            flood = await launch_many(a, FLOOD)
            late = await launch_many(b, LATE)
        a_done_when_b_done = -1

        async def b_finished() -> bool:
            nonlocal a_done_when_b_done
            if await succeeded(stack_db, late) < LATE:
                return False
            a_done_when_b_done = await succeeded(stack_db, flood)
            return True

        await wait_until(b_finished, "tenant B's runs", timeout_s=300)
        discarded = await discard_unfinished(stack, stack_db, flood)
        print(f"fairness: B's {LATE} runs done when {a_done_when_b_done} of A's {FLOOD} were"
              f" ({discarded} of A's discarded after)")  # fmt: skip
        assert a_done_when_b_done < FLOOD / 2


async def test_an_urgent_run_overtakes_the_tenants_own_backlog(
    stack: Stack, stack_db: asyncpg.Pool
) -> None:
    async with tenant_api(stack, stack_db, "urgent", priority=5) as t:
        async with worker_stopped(stack):
            backlog = await launch_many(t, PRIORITY_BACKLOG)
            # the stack's key is an admin key: it may launch above the definition's priority
            [urgent] = await launch_many(t, 1, priority=1)
        done_before = -1

        async def urgent_finished() -> bool:
            nonlocal done_before
            if await succeeded(stack_db, [urgent]) < 1:
                return False
            done_before = await succeeded(stack_db, backlog)
            return True

        await wait_until(urgent_finished, "the priority-1 run", timeout_s=120)
        print(f"priority: the priority-1 run done when {done_before} of {PRIORITY_BACKLOG} were")
        # First come, first served would finish it last (all 60 before it). Measured 0-16 on
        # this machine: its first task is dispatched first, but its later tasks share the
        # worker's slots with the backlog runs already in flight, more so on a loaded machine.
        assert done_before < PRIORITY_BACKLOG / 2
        await all_succeeded(stack_db, backlog, timeout_s=120)


async def test_two_floods_share_the_queue_by_weight(stack: Stack, stack_db: asyncpg.Pool) -> None:
    async with (
        tenant_api(stack, stack_db, "light", weight=1) as light,
        tenant_api(stack, stack_db, "heavy", weight=3) as heavy,
    ):
        async with worker_stopped(stack):
            light_runs = await launch_many(light, WEIGHTED_FLOOD)
            heavy_runs = await launch_many(heavy, WEIGHTED_FLOOD)
        marks: list[tuple[int, int]] = []

        async def reached(total: int) -> bool:
            counts = (await succeeded(stack_db, light_runs), await succeeded(stack_db, heavy_runs))
            if sum(counts) < total:
                return False
            marks.append(counts)
            return True

        # a window inside which both still have a backlog (heavy drains at ~3/4 of the rate)
        await wait_until(lambda: reached(30), "the window's start", timeout_s=120)
        await wait_until(lambda: reached(110), "the window's end", timeout_s=120)
        (light0, heavy0), (light1, heavy1) = marks
        ratio = (heavy1 - heavy0) / max(light1 - light0, 1)
        print(f"weights: over the window light {light1 - light0}, heavy {heavy1 - heavy0}"
              f" runs (ratio {ratio:.2f}; weights 1:3)")  # fmt: skip
        # 1:3 weights measured 3.1-3.3 on an idle machine and down to 1.7 with other load on the
        # two cores (fairness is per task-queue partition and only the first workflow task of a
        # run goes through the shared queue); equal sharing would be ~1.
        assert 1.4 <= ratio <= 4.5
        await all_succeeded(stack_db, light_runs + heavy_runs, timeout_s=240)
