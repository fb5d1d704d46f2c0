"""The interpreter's data: scopes `payload`, `vars`, `meta`, `error`, `system` (SPEC §4).

Lives in workflow state (plain JSON values, so a checkpoint for continue-as-new is `to_state()`).
`local` is not here: it is the innermost `LoopFrame` of the executing branch.

Every assignment is checked before it stays (`RunStateLimits`): a value with a NUL character or
nested past the JSON depth limit, or one that takes the run's state (payload, vars, meta, error,
as `result_json` stores it) past 10 MiB, fails the step that wrote it with a `ValidationError`.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from stepwise_contract.json_limits import JsonRefused, check_json
from stepwise_contract.validation import parse_assign_path
from temporalio import workflow

from stepwise_worker.step_errors import StepError
from stepwise_worker.workflow.frames import LoopFrame

# meta keys that identify the run; expressions always see the true values and nobody writes them
IDENTITY_KEYS = ("runId", "workflowId", "workflowVersion", "tenantId")

MAX_RUN_STATE_BYTES: Final = 10 * 1024 * 1024
# Runs recorded before the limits replay as they ran: the patch is asked only when an assignment
# breaks a limit, so histories that never broke one carry no marker and replay unchanged.
RUN_STATE_LIMITS_PATCH: Final = "run-state-limits"
# an assignment adds at most its value, its key and a few bytes of punctuation to the state
_ASSIGN_OVERHEAD: Final = 16

_encode = msgspec.json.Encoder().encode
_ABSENT: Final = object()


class RunStateLimits:
    """Keeps an upper bound of the state's JSON size, measured exactly only when the bound
    passes the limit (so a step costs the size of what it assigns, not of the whole state)."""

    def __init__(self, max_bytes: int = MAX_RUN_STATE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._upper: int | None = None

    def grew(self, scopes: Scopes, target: str, value: Any) -> bool:
        """False when the state, with `value` now written, is over the limit."""
        if self._upper is None:
            self._upper = len(_encode(scopes.to_state()))
        else:
            self._upper += len(_encode(value)) + len(target) + _ASSIGN_OVERHEAD
        if self._upper <= self.max_bytes:
            return True
        self._upper = len(_encode(scopes.to_state()))
        return self._upper <= self.max_bytes

    def forget(self) -> None:
        self._upper = None


def _enforced() -> bool:
    return workflow.patched(RUN_STATE_LIMITS_PATCH)


def check_json_limits(value: Any, *, what: str, path: str) -> None:
    """A `ValidationError` step failure when `value` nests past the JSON depth limit or holds a
    NUL (Postgres cannot store it, and hashing or encoding a value nested ~1,000 deep fails the
    workflow task itself)."""
    try:
        check_json(value, what=what)
    except JsonRefused as exc:
        if _enforced():
            raise StepError("ValidationError", exc.detail, code=exc.code, node_path=path) from None


class Scopes:
    def __init__(
        self,
        *,
        payload: Any,
        vars: dict[str, Any] | None = None,
        meta: dict[str, Any],
        system: dict[str, Any],
        error: Any = None,
    ) -> None:
        self.payload: dict[str, Any] = payload if isinstance(payload, dict) else {}
        self.vars: dict[str, Any] = vars if vars is not None else {}
        self.meta = meta
        self.system = system
        self.error = error
        self.limits = RunStateLimits()

    @classmethod
    def initial(
        cls,
        *,
        payload: Any,
        run_id: str,
        workflow_id: str,
        workflow_version: int,
        tenant_id: str,
        definition_hash: str | None,
    ) -> Scopes:
        identity = {
            "runId": run_id,
            "workflowId": workflow_id,
            "workflowVersion": workflow_version,
            "tenantId": tenant_id,
        }
        return cls(
            payload=payload,
            meta={"state": None, **identity},
            system={**identity, "definitionHash": definition_hash},
        )

    def context(self, frame: LoopFrame | None) -> dict[str, Any]:
        """The expression input: vars and the loop frame by bare name, the named scopes on top."""
        local = frame.as_json() if frame is not None else {}
        meta = {**self.meta, **{k: self.system[k] for k in IDENTITY_KEYS}}
        return {
            **self.vars,
            **local,
            "payload": self.payload,
            "vars": self.vars,
            "local": local,
            "meta": meta,
            "error": self.error,
            "system": self.system,
        }

    def assign(self, target: str, value: Any, frame: LoopFrame | None, *, path: str) -> None:
        """Write `value` at an assignment path (SPEC §4); a malformed or unsafe path fails."""
        try:
            scope, segments = parse_assign_path(target)
        except ValueError as exc:
            raise StepError(
                "ValidationError", str(exc), code="INVALID_ASSIGN_PATH", node_path=path
            ) from None
        container: dict[str, Any]
        if scope == "payload":
            container = self.payload
        elif scope == "meta":
            if segments[0] in IDENTITY_KEYS:
                raise StepError(
                    "ValidationError",
                    f"meta.{segments[0]} identifies the run and cannot be assigned",
                    code="INVALID_ASSIGN_PATH",
                    node_path=path,
                )
            container = self.meta
        elif scope == "local" and frame is not None:
            container = frame.locals
        else:  # vars, or local outside any loop (as the reference: falls back to vars)
            container = self.vars
        check_json_limits(value, what=f"the value assigned to {target}", path=path)
        for segment in segments[:-1]:
            node = container.get(segment)
            if not isinstance(node, dict):
                node = {}
                container[segment] = node
            container = node
        last = segments[-1]
        previous = container.get(last, _ABSENT)
        container[last] = value
        if not self.limits.grew(self, target, value) and _enforced():
            if previous is _ABSENT:  # the run goes on (or fails) with the state it had
                del container[last]
            else:
                container[last] = previous
            self.limits.forget()
            raise StepError(
                "ValidationError",
                f"assigning {target} takes the run state past {self.limits.max_bytes} bytes",
                code="RUN_STATE_TOO_LARGE",
                node_path=path,
            )

    def to_state(self) -> dict[str, Any]:
        return {
            "payload": self.payload,
            "vars": self.vars,
            "meta": self.meta,
            "system": self.system,
            "error": self.error,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Scopes:
        return cls(
            payload=state.get("payload"),
            vars=state.get("vars") or {},
            meta=state.get("meta") or {},
            system=state.get("system") or {},
            error=state.get("error"),
        )
