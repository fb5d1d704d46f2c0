"""Is task-queue fairness on in this Temporal server? Asked by behaviour, not by configuration.

Temporal has no API that reports its dynamic config, so the probe builds a tiny backlog and looks
at the order the server hands it out:

1. On a fresh task queue that no worker polls, start `FLOOD` workflows with fairness key `a`,
   then `LATE` with key `b` (a probe workflow type nobody implements; each expires on its own
   after `EXPIRY` even if the probe is killed).
2. Poll workflow tasks directly, as a worker would, and count the `b` tasks among the first
   `SAMPLE`. First come, first served (fairness off) hands out `a`'s backlog first: almost no `b`.
   Fair queuing shares dispatch between the two keys: about half are `b`.
3. Terminate every probe workflow.

A task queue has several partitions, each with its own backlog and ordering, so the answer is
statistical; the sizes below keep the two outcomes apart (measured on a dev server: off 0 `b`
in every try, on 4-7). The flood is large enough that the first SAMPLE polls never drain one
partition's `a` backlog (with 40, a loaded machine once showed 3 `b` with fairness off).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import timedelta
from typing import Final, Literal

import msgspec
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import Client
from temporalio.common import Priority

PROBE_WORKFLOW_TYPE: Final = "stepwise-fairness-probe"
FLOOD: Final = 80
LATE: Final = 16
SAMPLE: Final = 16
EXPIRY: Final = timedelta(seconds=60)
POLL_TIMEOUT: Final = timedelta(seconds=5)
# give up after this many polls in all
# the server refuses shorter long polls; one that finds an empty partition ends after this
MAX_POLLS: Final = 40

Verdict = Literal["on", "off", "unclear"]


class FairnessProbe(msgspec.Struct, frozen=True, kw_only=True):
    verdict: Verdict
    late_in_sample: int  # `b` tasks among the first SAMPLE handed out
    sampled: int


def verdict_for(late_in_sample: int, sampled: int) -> Verdict:
    if sampled < SAMPLE:
        return "unclear"
    if late_in_sample >= 3:
        return "on"
    return "off" if late_in_sample <= 1 else "unclear"


async def probe_fairness(client: Client) -> FairnessProbe:
    queue = f"stepwise-fairness-probe-{uuid.uuid4()}"
    ids: list[str] = []
    try:
        for key, count in (("a", FLOOD), ("b", LATE)):
            for index in range(count):
                workflow_id = f"{queue}-{key}-{index}"
                await client.start_workflow(
                    PROBE_WORKFLOW_TYPE,
                    id=workflow_id,
                    task_queue=queue,
                    execution_timeout=EXPIRY,
                    priority=Priority(fairness_key=key),
                )
                ids.append(workflow_id)
        order = await _dispatch_order(client, queue)
    finally:
        await asyncio.gather(*(_terminate(client, workflow_id) for workflow_id in ids))
    late = sum(1 for workflow_id in order[:SAMPLE] if f"{queue}-b-" in workflow_id)
    sampled = min(len(order), SAMPLE)
    return FairnessProbe(verdict=verdict_for(late, sampled), late_in_sample=late, sampled=sampled)


async def _dispatch_order(client: Client, queue: str) -> list[str]:
    """The workflow ids of the first SAMPLE tasks the server hands out, in order."""
    order: list[str] = []
    request = PollWorkflowTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=queue),
        identity="stepwise-doctor-fairness-probe",
    )
    for _ in range(MAX_POLLS):
        if len(order) >= SAMPLE:
            break
        try:
            task = await client.workflow_service.poll_workflow_task_queue(
                request, timeout=POLL_TIMEOUT
            )
        except Exception:
            continue  # this poll reached a partition with nothing left; poll again
        if task.task_token:
            order.append(task.workflow_execution.workflow_id)
    return order


async def _terminate(client: Client, workflow_id: str) -> None:
    with contextlib.suppress(Exception):
        await client.get_workflow_handle(workflow_id).terminate(reason="fairness probe done")
