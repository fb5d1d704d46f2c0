"""Temporal payloads: the interpreter workflow's input and result, its signals and query answers.

One Struct in, one out. Fields added later must have defaults (old histories still decode).
"""

from __future__ import annotations

from typing import Any

import msgspec

from stepwise_contract.enums import RunStatus

JSON = Any


class TemporalPayload(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Base of every Temporal payload: camelCase on the wire, as the reference system."""


class PendingSignal(TemporalPayload, frozen=True, kw_only=True):
    """A buffered signal as checkpoints written before `Checkpoint.inbox` carry it."""

    kind: str  # "event" | "human" | "quota"
    body: JSON


class Checkpoint(TemporalPayload, frozen=True, kw_only=True):
    """Interpreter state carried across continue-as-new (opaque to everyone but the worker)."""

    state: JSON
    pending_signals: list[PendingSignal] = []
    steps_executed: int = 0
    # signals received but not yet consumed (`pending_signals` in older checkpoints)
    inbox: list[InboxSignal] = []


class ActionFacts(TemporalPayload, frozen=True, kw_only=True):
    """What the interpreter needs of an action's declaration to schedule it."""

    local: bool
    timeout_s: float


class PreloadedRun(TemporalPayload, frozen=True, kw_only=True):
    """What the interpreter otherwise loads from Postgres when it starts, sent by a starter that
    already holds it (the API's launch): the pinned definition and its hash, the run input, and
    the facts of every action the definition calls ("<actionId>@<version>"). The start event
    records it, so a replay schedules exactly as the original run did."""

    definition: JSON
    definition_hash: str | None = None
    payload: JSON = None
    actions: dict[str, ActionFacts] = {}


class RunInput(TemporalPayload, frozen=True, kw_only=True):
    """Input of the interpreter workflow (SPEC §5)."""

    run_id: str
    tenant_id: str
    workflow_id: str
    workflow_version: int
    trigger_type: str | None = None
    execution_key: str | None = None
    checkpoint: Checkpoint | None = None
    # set for child runs started by control.callWorkflow
    parent_run_id: str | None = None
    root_run_id: str | None = None
    # None: the workflow loads the run from Postgres (a local activity)
    preloaded: PreloadedRun | None = None
    # `names.RUN_COMMANDS` when the starter knows it: the run takes that command set without
    # asking Temporal for a patch marker. None (a starter that predates the field): it asks.
    commands: str | None = None


class RunResult(TemporalPayload, frozen=True, kw_only=True):
    """What the interpreter returns: the final status and scopes."""

    run_id: str
    status: RunStatus
    payload: JSON = None
    vars: JSON = None
    meta: JSON = None
    error: JSON = None


class EventSignal(TemporalPayload, frozen=True, kw_only=True):
    """`workflowRuntimeV2Event`: an event routed to a waiting run."""

    event_id: str
    event_name: str
    correlation_key: str | None = None
    payload: JSON = None
    received_at: str | None = None


class HumanTaskSignal(TemporalPayload, frozen=True, kw_only=True):
    """`workflowRuntimeV2HumanTask`: a human task was completed."""

    task_id: str
    event_name: str = "human.task.completed"
    payload: JSON = None


class QuotaResumeSignal(TemporalPayload, frozen=True, kw_only=True):
    """`workflowRuntimeV2QuotaResume`: capacity exists again for a quota-paused run."""

    wait_id: str
    reason: str = ""
    resumed_by: str = ""


class PendingEvent(EventSignal, frozen=True, kw_only=True, tag="event", tag_field="kind"):
    """An event signal in the interpreter's inbox: tagged, so the checkpoint decodes the union."""


class PendingHumanTask(HumanTaskSignal, frozen=True, kw_only=True, tag="human", tag_field="kind"):
    """A human-task signal in the interpreter's inbox."""


class PendingQuotaResume(
    QuotaResumeSignal, frozen=True, kw_only=True, tag="quota", tag_field="kind"
):
    """A quota-resume signal in the interpreter's inbox."""


# What a workflow's inbox holds. Each decodes the signal of its base type (the tag is optional on
# its own), so the signal handlers take these types directly.
InboxSignal = PendingEvent | PendingHumanTask | PendingQuotaResume


class CurrentStep(TemporalPayload, frozen=True, kw_only=True):
    step_path: str | None = None
    step_id: str | None = None
    step_type: str | None = None


class CurrentWait(TemporalPayload, frozen=True, kw_only=True):
    wait_id: str | None = None
    wait_type: str | None = None
    event_name: str | None = None
    key: str | None = None
    step_path: str | None = None


class InterpreterSummary(TemporalPayload, frozen=True, kw_only=True):
    run_id: str
    status: str
    steps_executed: int = 0
    current_step: CurrentStep | None = None
    current_wait: CurrentWait | None = None
    pending_signals: int = 0
