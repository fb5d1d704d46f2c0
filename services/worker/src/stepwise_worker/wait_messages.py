"""Inputs and outputs of the wait store's local activities (waits, human tasks, child runs, quota,
cancellation): one Struct in, one out.

They cross the workflow ↔ activity boundary through Temporal history, so fields added later need
defaults. Workflow code refers to these activities by the name constants below and never imports
the stores in `activities/` (which talk to Postgres).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import msgspec
from stepwise_contract.dsl import Filter
from stepwise_contract.payloads import EventSignal

OPEN_WAIT: Final = "stepwise.wait.open"
CHECK_BUFFER: Final = "stepwise.wait.checkBuffer"
RESOLVE_WAIT: Final = "stepwise.wait.resolve"
CREATE_HUMAN_TASK: Final = "stepwise.task.create"
RESOLVE_HUMAN_TASK: Final = "stepwise.task.resolve"
CREATE_CHILD_RUN: Final = "stepwise.child.create"
CHILD_RUN_STARTED: Final = "stepwise.child.started"
RESERVE_QUOTA: Final = "stepwise.quota.reserve"
PAUSE_FOR_QUOTA: Final = "stepwise.quota.pause"
RESUME_FROM_QUOTA: Final = "stepwise.quota.resume"
CANCEL_RUN: Final = "stepwise.run.cancel"


class StoreStruct(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the wait store's activity inputs and outputs."""


class Done(StoreStruct, frozen=True, kw_only=True):
    changed: int = 0


class OpenWait(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    wait_id: str
    step_path: str
    wait_type: str  # event | time | human | quota
    key: str | None = None
    event_name: str | None = None
    timeout_at: datetime | None = None
    payload: Any = None


class WaitOpened(StoreStruct, frozen=True, kw_only=True):
    wait_id: str


class BufferCheck(StoreStruct, frozen=True, kw_only=True):
    """Look for an event that arrived before the wait was registered (SPEC §5.4)."""

    tenant_id: str
    run_id: str
    event_name: str
    correlation_key: str | None = None  # None: any key matches
    filters: list[Filter] = []
    consumed_event_ids: list[str] = []


class BufferHit(StoreStruct, frozen=True, kw_only=True):
    event: EventSignal | None = None


class ResolveWait(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    wait_id: str
    status: str = "RESOLVED"  # RESOLVED | CANCELED
    payload_patch: dict[str, Any] = {}


class CreateHumanTask(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    step_path: str
    task_id: str
    wait_id: str
    event_name: str
    task_type: str
    title: str
    description: str | None = None
    context_data: Any = None
    form_schema: Any = None


class ResolveHumanTask(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    task_id: str
    wait_id: str
    status: str = "COMPLETED"  # COMPLETED | CANCELED
    event_name: str | None = None
    response: Any = None


class CreateChildRun(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    parent_run_id: str
    root_run_id: str
    parent_step_path: str
    child_run_id: str
    workflow_id: str  # the child definition's workflow_id, or its key
    workflow_version: int | None = None  # None: latest published
    payload: Any = None
    retry_of_run_id: str | None = None


class ChildRunCreated(StoreStruct, frozen=True, kw_only=True):
    child_run_id: str
    workflow_id: str
    workflow_version: int
    temporal_workflow_id: str


class ChildRunStarted(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    child_run_id: str
    temporal_run_id: str


class ReserveQuota(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str


class QuotaReservation(StoreStruct, frozen=True, kw_only=True):
    """`reserved`, or the figures that refused it (`limit` None = unlimited)."""

    reserved: bool
    limit: int | None = None
    used: int = 0
    period_start: datetime | None = None
    period_end: datetime | None = None


class PauseForQuota(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    wait_id: str
    step_path: str
    at: datetime
    reservation: QuotaReservation


class ResumeFromQuota(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    wait_id: str
    step_path: str


class CancelRun(StoreStruct, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    node_path: str | None = None
    at: datetime
    message: str = "Run canceled"
