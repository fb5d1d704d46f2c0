"""Continue-as-new (SPEC §5): long runs start a fresh history before it grows too large.

The interpreter is recursive Python (a sequence awaits its steps, a container awaits its nested
sequences), so a checkpoint must describe *where* the run is in terms it can re-enter. It keeps a
stack of the sequences it can re-enter — the root sequence and, nested in it, the body of the
item being run by a sequential `control.forEach` (any depth of such loops). At a **safe point**
(after a step of the innermost tracked sequence finished), when `CONTINUE_AS_NEW_EVERY` steps ran
since the last checkpoint or Temporal suggests it (`is_continue_as_new_suggested`), the run
continues as new with a `Checkpoint`:

- `state.scopes` — payload, vars, meta, error, system;
- `state.levels` — per tracked sequence: the next step index, and for a running loop its step
  row id and attempt, the evaluated items, the current item and that item's `local` values;
- `state.consumedEventIds`, `state.childRuns` — event ids consumed, latest child run per step;
- `inbox` — every buffered signal not consumed yet, typed (checkpoints written before the typed
  inbox carry them as `pending_signals`, `{kind, body}` entries: both decode);
- `steps_executed`.

On the new run the interpreter fast-forwards: each tracked sequence starts at its index, a
running loop is re-entered without a new step row (its original `STARTED` row is completed when
it ends) and without re-evaluating its items.

Limitation (documented in docs): steps inside `control.if` branches, `control.tryCatch` blocks and
`control.forEach` with `concurrency > 1` are not safe points; a run continues as new at the next
safe point after such a container finishes. Changing `CONTINUE_AS_NEW_EVERY` changes where
running histories continue as new: ship such a change behind `workflow.patched`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Protocol

import msgspec
from stepwise_contract.payloads import (
    Checkpoint,
    InboxSignal,
    PendingEvent,
    PendingHumanTask,
    PendingQuotaResume,
    RunInput,
)
from temporalio import workflow

from stepwise_worker.workflow.bookkeeping import Bookkeeper
from stepwise_worker.workflow.frames import At, LoopFrame
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.scopes import Scopes

CONTINUE_AS_NEW_EVERY: Final = 500
# workflow.patched ids of changes to the commands issued here
PATCH_CAN_CLOSES_TASK: Final = "stepwise-can-closes-task"
ROOT: Final = "root"
# the `kind` of a `pending_signals` entry (checkpoints written before the typed inbox)
LEGACY_KINDS: Final[dict[str, type[InboxSignal]]] = {
    "event": PendingEvent,
    "human": PendingHumanTask,
    "quota": PendingQuotaResume,
}


class CheckpointedRun(Protocol):
    """What a checkpoint records of a run and restores into it (`interpreter.Interpreter`)."""

    run_input: RunInput
    scopes: Scopes
    steps_executed: int
    book: Bookkeeper
    inbox: Inbox
    child_runs: dict[str, str]
    checkpoints: Checkpoints


class StepMark(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """A running sequential forEach, as the checkpoint records it."""

    index: int
    step_id: str
    attempt: int = 1
    items: list[Any] = []
    item: int = 0
    locals: dict[str, Any] = {}


class LevelMark(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One tracked sequence: where to go on (`step` set: re-enter that running loop)."""

    path: str
    item_keys: list[int] = []
    next_index: int = 0
    step: StepMark | None = None


@dataclass(slots=True)
class _Loop:
    items: list[Any]
    frame: LoopFrame | None = None


@dataclass(slots=True)
class _Level:
    path: str
    item_keys: tuple[int, ...]
    next_index: int = 0
    # the step of this sequence being executed: (index, step row id, attempt)
    running: tuple[int, str, int] | None = None
    loop: _Loop | None = None


def split_step_path(path: str) -> tuple[str, int] | None:
    """`root.steps[2].body.steps[0]` → (`root.steps[2].body`, 0)."""
    sequence, sep, tail = path.rpartition(".steps[")
    if not sep or not tail.endswith("]") or not tail[:-1].isdigit():
        return None
    return sequence, int(tail[:-1])


class Checkpoints:
    """The re-enterable position of a run, and the continue-as-new decision."""

    def __init__(
        self,
        *,
        every: int = CONTINUE_AS_NEW_EVERY,
        resume: list[LevelMark] | None = None,
        steps_at_start: int = 0,
    ) -> None:
        self.every = every
        self._stack: list[_Level] = []
        self._resume: list[LevelMark] = list(resume or [])
        self._steps_at_start = steps_at_start

    # -- the tracked stack ---------------------------------------------------------------------

    def _tracks(self, at: At) -> bool:
        """Whether the sequence `at` continues the tracked chain (root, or the current item of
        the sequential loop running in the innermost tracked sequence)."""
        if not self._stack:
            return at.path == ROOT and not at.item_keys
        top = self._stack[-1]
        if top.loop is None or top.running is None or top.loop.frame is None:
            return False
        body = f"{top.path}.steps[{top.running[0]}].body"
        return at.path == body and at.item_keys == (*top.item_keys, top.loop.frame.index)

    def _owner(self, at: At) -> tuple[_Level, int] | None:
        """The tracked level holding the step `at`, and the step's index in it."""
        split = split_step_path(at.path)
        if split is None or not self._stack:
            return None
        top = self._stack[-1]
        if top.path != split[0] or top.item_keys != at.item_keys:
            return None
        return top, split[1]

    def _resume_mark(self, at: At) -> LevelMark | None:
        split = split_step_path(at.path)
        if split is None or not self._resume:
            return None
        mark = self._resume[0]
        if mark.path != split[0] or tuple(mark.item_keys) != at.item_keys:
            return None
        if mark.step is None or mark.step.index != split[1]:
            return None
        return mark

    def enter_sequence(self, at: At) -> int:
        """Start tracking the sequence `at` if it continues the chain; the index to start at."""
        if not self._tracks(at):
            return 0
        level = _Level(path=at.path, item_keys=at.item_keys)
        start = 0
        if self._resume:
            mark = self._resume[0]
            if mark.path == at.path and tuple(mark.item_keys) == at.item_keys:
                start = mark.step.index if mark.step is not None else mark.next_index
                if mark.step is None:
                    self._resume.pop(0)
        level.next_index = start
        self._stack.append(level)
        return start

    def leave_sequence(self, at: At) -> None:
        top = self._stack[-1] if self._stack else None
        if top is not None and top.path == at.path and top.item_keys == at.item_keys:
            self._stack.pop()

    def resumed_step(self, at: At) -> tuple[str, int] | None:
        """(step row id, attempt) of a container step re-entered after continue-as-new."""
        mark = self._resume_mark(at)
        if mark is None or mark.step is None:
            return None
        return mark.step.step_id, mark.step.attempt

    def step_started(self, at: At, step_id: str, attempt: int) -> None:
        owner = self._owner(at)
        if owner is not None:
            level, index = owner
            level.running = (index, step_id, attempt)
            level.loop = None

    # -- sequential loops ----------------------------------------------------------------------

    def resumed_loop(self, at: At) -> StepMark | None:
        """The checkpointed state of the loop `at` when it is being re-entered (consumed)."""
        mark = self._resume_mark(at)
        if mark is None:
            return None
        self._resume.pop(0)
        return mark.step

    def enter_loop(self, at: At, items: list[Any]) -> None:
        owner = self._owner(at)
        if owner is not None and owner[0].running is not None and owner[0].running[0] == owner[1]:
            owner[0].loop = _Loop(items=items)

    def loop_item(self, at: At, frame: LoopFrame, resumed: StepMark | None = None) -> None:
        """Item `frame.index` of the loop `at` starts (its `local` values restored on resume)."""
        if resumed is not None and resumed.item == frame.index:
            frame.locals.update(resumed.locals)
        owner = self._owner(at)
        if owner is not None and owner[0].loop is not None:
            owner[0].loop.frame = frame

    def leave_loop(self, at: At) -> None:
        owner = self._owner(at)
        if owner is not None:
            owner[0].loop = None

    # -- safe points ---------------------------------------------------------------------------

    def _due(self, steps_executed: int) -> bool:
        if steps_executed - self._steps_at_start >= self.every:
            return True
        return workflow.info().is_continue_as_new_suggested()

    async def safe_point(
        self, interp: CheckpointedRun, at: At, next_index: int, length: int
    ) -> None:
        """After step `next_index - 1` of the sequence `at`: continue as new if it is due."""
        if not self._stack:
            return
        top = self._stack[-1]
        if top.path != at.path or top.item_keys != at.item_keys:
            return
        top.next_index = next_index
        top.running = None
        top.loop = None
        if at.path == ROOT and next_index >= length:
            return  # the run is about to finish: nothing left to carry
        if self._due(interp.steps_executed):
            await self._continue_as_new(interp)

    def snapshot(self) -> list[LevelMark]:
        marks: list[LevelMark] = []
        for level in self._stack:
            step = None
            if level.running is not None and level.loop is not None:
                frame = level.loop.frame
                step = StepMark(
                    index=level.running[0],
                    step_id=level.running[1],
                    attempt=level.running[2],
                    items=level.loop.items,
                    item=frame.index if frame is not None else 0,
                    locals=dict(frame.locals) if frame is not None else {},
                )
            marks.append(
                LevelMark(path=level.path, item_keys=list(level.item_keys),
                          next_index=level.next_index, step=step)
            )  # fmt: skip
        return marks

    async def _continue_as_new(self, interp: CheckpointedRun) -> None:
        await interp.book.flush()  # the finished steps' rows before this history closes
        # End the current workflow task first (a 1 ms timer): the markers of the local activities
        # run since the last task are recorded, and signals that arrived meanwhile come in with the
        # next task, before the checkpoint takes the inbox. Without it, a signal arriving during a
        # long task of local activities makes Temporal refuse the continue-as-new
        # (UnhandledCommand) and the whole task — up to hundreds of steps — runs again.
        # Patched: histories that continued as new without this timer still replay.
        if workflow.patched(PATCH_CAN_CLOSES_TASK):
            await workflow.sleep(0.001)
        checkpoint = Checkpoint(
            state={
                "scopes": interp.scopes.to_state(),
                "levels": msgspec.to_builtins(self.snapshot()),
                "consumedEventIds": list(interp.inbox.consumed_event_ids),
                "childRuns": dict(interp.child_runs),
            },
            inbox=list(interp.inbox.signals),
            steps_executed=interp.steps_executed,
        )
        workflow.continue_as_new(msgspec.structs.replace(interp.run_input, checkpoint=checkpoint))


def _state(checkpoint: Checkpoint) -> dict[str, Any]:
    return checkpoint.state if isinstance(checkpoint.state, dict) else {}


def carried_signals(checkpoint: Checkpoint) -> list[InboxSignal]:
    """The buffered signals, whichever shape the checkpoint carries them in."""
    signals = list(checkpoint.inbox)
    for entry in checkpoint.pending_signals:
        kind = LEGACY_KINDS.get(entry.kind)
        if kind is None:
            continue
        try:
            signals.append(msgspec.convert(entry.body, kind))
        except msgspec.ValidationError:
            continue  # no step could ever have consumed it
    return signals


def restore_inbox(inbox: Inbox, checkpoint: Checkpoint) -> None:
    """The buffered signals and consumed event ids as they were checkpointed."""
    state = _state(checkpoint)
    # signals delivered to this new run already are newer than the carried ones
    inbox.signals[:0] = carried_signals(checkpoint)
    inbox.consumed_event_ids[:] = [str(e) for e in state.get("consumedEventIds") or []]


def restore_interpreter(interp: CheckpointedRun, checkpoint: Checkpoint) -> None:
    """Scopes, step count, child runs and the position to re-enter, as they were checkpointed."""
    state = _state(checkpoint)
    if isinstance(state.get("scopes"), dict):
        interp.scopes = Scopes.from_state(state["scopes"])
    interp.steps_executed = checkpoint.steps_executed
    interp.child_runs.update(state.get("childRuns") or {})
    levels = msgspec.convert(state.get("levels") or [], list[LevelMark])
    interp.checkpoints = Checkpoints(resume=levels, steps_at_start=checkpoint.steps_executed)
