"""Where a step runs: its path, the innermost loop frame and how errors in its sequence route.

Concurrent forEach items run as separate asyncio tasks in the workflow, so nothing about "where
we are" may live in shared interpreter state: it is passed down explicitly as an `At`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(slots=True)
class LoopFrame:
    """One forEach item: what `local` (and bare names) show inside the loop body."""

    item_var: str
    item: Any
    index: int
    length: int
    # `local.x` assignments made inside this item
    locals: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.locals,
            "item": self.item,
            "index": self.index,
            "length": self.length,
            "isFirst": self.index == 0,
            "isLast": self.index == self.length - 1,
            self.item_var: self.item,
        }


@dataclass(frozen=True, slots=True)
class At:
    """The position of a step execution.

    `continue_on_error` is true when the nearest enclosing error handler of this sequence is a
    forEach with `onItemError: continue` (a tryCatch's `try` or a failing loop resets it), so a
    failing step is recorded and the sequence goes on with its next step (SPEC §3, §5).
    """

    path: str
    frame: LoopFrame | None = None
    # forEach item indices from the outermost loop inward: keeps idempotency keys distinct
    item_keys: tuple[int, ...] = ()
    continue_on_error: bool = False
    attempt: int = 1

    def step(self, index: int) -> At:
        """Position of step `index` of the sequence at `self.path` (a prefix like `root`)."""
        return replace(self, path=f"{self.path}.steps[{index}]", attempt=1)

    def branch(self, segment: str, *, continue_on_error: bool | None = None) -> At:
        """The nested sequence `segment` (then/else/body/try/catch) of the step at `self.path`."""
        keep = self.continue_on_error if continue_on_error is None else continue_on_error
        return replace(self, path=f"{self.path}.{segment}", continue_on_error=keep, attempt=1)

    def item(self, frame: LoopFrame, *, continue_on_error: bool) -> At:
        return replace(
            self,
            path=f"{self.path}.body",
            frame=frame,
            item_keys=(*self.item_keys, frame.index),
            continue_on_error=continue_on_error,
            attempt=1,
        )

    def with_attempt(self, attempt: int) -> At:
        return replace(self, attempt=attempt)
