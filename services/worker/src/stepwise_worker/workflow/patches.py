"""The `workflow.patched` ids of changes to the commands a run issues, asked once per run.

Each such change ships behind a patch, so a history recorded before it replays as it ran. A run
started since `CURRENT` asks that one patch alone and takes every change listed here: one marker
and one search-attribute upsert per run, where asking each would cost a pair per change. A
history recorded before `CURRENT` has no such marker; it is asked each patch, in the order the
code asked them when it was recorded, and each answers what its own marker says.

The next change gets its own id here, and `CURRENT` a new value; the old value then becomes one
more id that `RunPatches` asks before the individual ones (it implies every change before it).
"""

from __future__ import annotations

from typing import Final

from temporalio import workflow

# every change below, for runs started since
CURRENT: Final = "stepwise-commands-2026-12"

# a local action's step start travels inside its action activity
MERGED_ACTION_START: Final = "stepwise-action-start-in-activity"
# a small inline expression budget, the rest evaluated in the worker's expression processes
EXPRESSION_OFFLOAD: Final = "stepwise-expression-offload"
# the start's input may carry the run (`RunInput.preloaded`): no load_run local activity
PRELOADED_RUN: Final = "stepwise-preloaded-run"


class RunPatches:
    """Which of the changes above this run takes; built at the start of the run's first task."""

    def __init__(self) -> None:
        self.current = workflow.patched(CURRENT)

    def has(self, patch_id: str) -> bool:
        return self.current or workflow.patched(patch_id)
