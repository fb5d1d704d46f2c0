"""The `workflow.patched` ids of changes to the commands a run issues, and which a run takes.

Each such change ships behind a patch, so a history recorded before it replays as it ran. A run
started since `CURRENT` takes every change listed here. Its starter says so in the run's input
(`RunInput.commands`, the contract's `RUN_COMMANDS`): the run then asks Temporal nothing, so it
records no patch marker and no `TemporalChangeVersion` search-attribute upsert (a visibility write
on the server for every run). A run whose starter predates that field asks the `CURRENT` patch
once (one marker and one upsert); a history recorded before `CURRENT` has no such marker, so it is
asked each patch, in the order the code asked them when it was recorded, and each answers what
its own marker says. The input is part of the history, so a replay decides as the first run did.

Command sets are cumulative: each earlier set (`EARLIER_SETS`) implies the changes listed with
it, whether a run's input names it or its history carries it as a marker. During a rollout a
starter may name a set the worker that runs the first task does not know yet; that worker asks
its own set as a patch, and a newer worker replaying the history follows the marker, not the
input (one set back). The next change gets its own id here, `RUN_COMMANDS` (and so `CURRENT`)
a new value, and the old value moves to `EARLIER_SETS` with the ids it covers.
"""

from __future__ import annotations

from typing import Final

from stepwise_contract.names import RUN_COMMANDS
from temporalio import workflow

# every change below, for runs started since
CURRENT: Final = RUN_COMMANDS

# a local action's step start travels inside its action activity
MERGED_ACTION_START: Final = "stepwise-action-start-in-activity"
# a small inline expression budget, the rest evaluated in the worker's expression processes
EXPRESSION_OFFLOAD: Final = "stepwise-expression-offload"
# the start's input may carry the run (`RunInput.preloaded`): no load_run local activity
PRELOADED_RUN: Final = "stepwise-preloaded-run"
# a data step that ends the run writes its row with the run's completion (`Bookkeeper.hold_start`)
HELD_LAST_START: Final = "stepwise-held-last-start"

# earlier command sets, newest first: each implies the changes listed with it
EARLIER_SETS: Final[tuple[tuple[str, frozenset[str]], ...]] = (
    (
        "stepwise-commands-2026-12",
        frozenset({MERGED_ACTION_START, EXPRESSION_OFFLOAD, PRELOADED_RUN}),
    ),
)


class RunPatches:
    """Which of the changes above this run takes; built at the start of the run's first task."""

    def __init__(self, commands: str | None) -> None:
        """`commands`: the run input's command set (None: its starter did not say)."""
        self._commands = commands
        self._earlier: dict[str, bool] = {}
        if commands == CURRENT and self._run_by_older_worker():
            self.current = False
        else:
            self.current = commands == CURRENT or workflow.patched(CURRENT)

    def _run_by_older_worker(self) -> bool:
        """A history whose first task ran on a worker older than its starter: that worker did
        not know the named set and asked its own as a patch, so the run took that set's commands.
        Asked only in a replay, where `patched` reads the history and records nothing."""
        if not workflow.unsafe.is_replaying():
            return False
        return any(self._took(name) for name, _covers in EARLIER_SETS)

    def has(self, patch_id: str) -> bool:
        if self.current:
            return True
        for name, covers in EARLIER_SETS:
            if patch_id in covers and self._took(name):
                return True
        return workflow.patched(patch_id)

    def _took(self, name: str) -> bool:
        """Whether the run started with the earlier set `name` (named, or asked as a patch)."""
        if name not in self._earlier:
            self._earlier[name] = self._commands == name or workflow.patched(name)
        return self._earlier[name]
