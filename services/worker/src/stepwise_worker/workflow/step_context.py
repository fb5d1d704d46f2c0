"""What a step handler may use of the running interpreter (`interpreter.Interpreter` implements it).

Handlers do their step's own work through this and nothing else: no `workflow.instance()`, no
import of the interpreter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from stepwise_contract.expression_budget import MAX_RESULT_BYTES
from stepwise_contract.payloads import RunInput

from stepwise_worker.messages import ActionInfo
from stepwise_worker.workflow.bookkeeping import Bookkeeper, DeferredStart
from stepwise_worker.workflow.checkpoint import Checkpoints
from stepwise_worker.workflow.frames import At
from stepwise_worker.workflow.inbox import Inbox
from stepwise_worker.workflow.scopes import Scopes


class StepContext(Protocol):
    @property
    def run_input(self) -> RunInput: ...

    @property
    def scopes(self) -> Scopes: ...

    @property
    def actions(self) -> Mapping[str, ActionInfo]:
        """`<actionId>@<version>` → how to schedule it, for every action the definition calls."""
        ...

    @property
    def book(self) -> Bookkeeper: ...

    @property
    def inbox(self) -> Inbox: ...

    @property
    def checkpoints(self) -> Checkpoints: ...

    @property
    def child_runs(self) -> dict[str, str]:
        """control.callWorkflow: the latest child run per step execution (the next attempt's
        `retryOfRunId`)."""
        ...

    async def evaluate(
        self,
        value: Any,
        at: At,
        *,
        what: str,
        required: bool = True,
        max_result_bytes: int = MAX_RESULT_BYTES,
        extra: Mapping[str, Any] | None = None,
    ) -> Any: ...

    async def evaluate_mapping(
        self, mapping: Mapping[str, Any], at: At, *, what: str
    ) -> dict[str, Any]: ...

    async def run_sequence(self, steps: Sequence[Any], at: At) -> None: ...

    def take_deferred_start(self) -> DeferredStart | None:
        """The start row the interpreter left for this step's action activity to carry."""
        ...
