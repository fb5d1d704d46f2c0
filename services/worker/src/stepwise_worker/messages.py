"""Inputs and outputs of the worker's activities: one Struct in, one out (SPEC §5).

These cross the workflow ↔ activity boundary through Temporal history, so fields added later need
defaults (old histories must still decode). Activity names are constants: workflow code refers to
activities by name and never imports the modules that talk to Postgres.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec
from stepwise_contract.payloads import ActionFacts

from stepwise_worker.wait_messages import QuotaReservation

JSON = Any

LOAD_RUN: Final = "stepwise.load_run"
RECORD_STEPS: Final = "stepwise.record_steps"
COMPLETE_RUN: Final = "stepwise.complete_run"
EXECUTE_ACTION: Final = "stepwise.execute_action"


class Message(msgspec.Struct, frozen=True, kw_only=True):
    pass


class LoadRun(Message, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    workflow_id: str
    workflow_version: int


class ActionInfo(Message, frozen=True, kw_only=True):
    """What the workflow needs of an action declaration to schedule it (recorded in history, so
    a replay schedules exactly as the original run did even if the deployment changed)."""

    local: bool
    timeout_s: float


def action_infos(facts: Mapping[str, ActionFacts]) -> dict[str, ActionInfo]:
    """The contract's action facts in the shape `LoadedRun` records them."""
    return {key: ActionInfo(local=f.local, timeout_s=f.timeout_s) for key, f in facts.items()}


class LoadedRun(Message, frozen=True, kw_only=True):
    definition: JSON
    definition_hash: str | None = None
    # the run input (large values travel through the claim-check codec, not as placeholders)
    payload: JSON = None
    # "<actionId>@<version>" → declaration facts, for every action the definition calls
    actions: dict[str, ActionInfo] = {}


class LogLine(Message, frozen=True, kw_only=True):
    level: str
    message: str
    step_path: str | None = None
    context: JSON = None


class StepStart(Message, frozen=True, kw_only=True):
    step_id: str
    step_path: str
    definition_step_id: str
    step_type: str
    attempt: int = 1


class StepDone(Message, frozen=True, kw_only=True):
    step_id: str
    status: str
    error: JSON = None


class StepBatch(Message, frozen=True, kw_only=True):
    """Completions not yet written plus (usually) the next step's start: one round trip."""

    tenant_id: str
    run_id: str
    done: list[StepDone] = []
    start: StepStart | None = None
    logs: list[LogLine] = []


class RunDone(Message, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    status: str
    error: JSON = None
    result: JSON = None
    done: list[StepDone] = []
    logs: list[LogLine] = []
    # a data step that ended the run (`Bookkeeper.hold_start`): its row, written completed from
    # its entry in `done`, and its quota unit go in the same statement as the run's completion
    start: StepStart | None = None


class Recorded(Message, frozen=True, kw_only=True):
    """Result of a projection write (rows touched, for tests and logs)."""

    steps_started: int = 0
    steps_completed: int = 0
    # complete_run, runs recorded before the claim-check codec only: the result with its bulk
    # moved to placeholders; never set now, kept so those histories decode and replay
    result: JSON = None
    result_externalized: bool = False
    # set when a step start found no quota capacity (SPEC §5.5): no step row was written (by
    # complete_run: nothing at all) and the run must pause
    quota: QuotaReservation | None = None


class ActionRequest(Message, frozen=True, kw_only=True):
    tenant_id: str
    run_id: str
    step_path: str
    action_id: str
    version: int
    # resolved inputMapping: `$secret` refs still unresolved
    input: JSON
    idempotency_key: str
    attempt: int = 1
    # the step-start projection (with buffered completions) carried into this activity instead of
    # a local activity of its own: recorded first, in the same activity (interpreter.py)
    steps: StepBatch | None = None
    # where the published definition wrote `$secret` refs in `input` (secret_positions.py): the
    # only refs resolved; None (a call scheduled by an older worker) resolves none
    secret_paths: list[list[str | int]] | None = None


class ActionResult(Message, frozen=True, kw_only=True):
    # the action output
    output: JSON
    invocation_id: str | None = None
    # true when the ledger already held a SUCCEEDED invocation for the key (not executed again)
    replayed: bool = False
    # set when the carried step start found no quota capacity: nothing else was done
    quota: QuotaReservation | None = None
