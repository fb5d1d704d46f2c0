"""Quota pause and resume in the workflow (SPEC §5.5).

Every step start reserves one unit of the tenant's quota in the same statement that writes the
step's `STARTED` row (`projections.record_steps` → `quota_store.quota_ctes`). When there is
no capacity no step row is written and the step start calls `pause_until_resumed`: the run turns
`WAITING` with a `quota` wait and a `QuotaExceeded` `error_json`, then blocks until a
`workflowRuntimeV2QuotaResume` signal names that wait (sent by `POST …/quota-resume` or the
sweeper's scan). The wait is then resolved, the run is `RUNNING` again, and the caller retries the
step start — which reserves again and may pause again, with a new wait, if capacity is gone.
"""

from __future__ import annotations

from stepwise_contract.enums import WaitType
from stepwise_contract.payloads import CurrentWait, PendingQuotaResume
from temporalio import workflow

from stepwise_worker.wait_messages import (
    PAUSE_FOR_QUOTA,
    RESUME_FROM_QUOTA,
    Done,
    PauseForQuota,
    QuotaReservation,
    ResumeFromQuota,
)
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.store_calls import local


async def pause_until_resumed(
    inbox: Inbox, *, tenant_id: str, run_id: str, step_path: str, reservation: QuotaReservation
) -> None:
    """Project the pause, block until this wait's resume signal, project the resume."""
    wait_id = str(workflow.uuid4())
    inbox.drop(PendingQuotaResume)  # resume signals of older, resolved quota waits
    await local(
        PAUSE_FOR_QUOTA,
        PauseForQuota(
            tenant_id=tenant_id,
            run_id=run_id,
            wait_id=wait_id,
            step_path=step_path,
            at=workflow.now(),
            reservation=reservation,
        ),
        Done,
    )
    wait = CurrentWait(wait_id=wait_id, wait_type=WaitType.QUOTA, step_path=step_path)
    with inbox.waiting_on(wait):
        await workflow.wait_condition(
            lambda: inbox.has(PendingQuotaResume, lambda signal: signal.wait_id == wait_id)
        )
    inbox.drop(PendingQuotaResume)
    await local(
        RESUME_FROM_QUOTA,
        ResumeFromQuota(tenant_id=tenant_id, run_id=run_id, wait_id=wait_id, step_path=step_path),
        Done,
    )
