"""The interpreter's data: scopes `payload`, `vars`, `meta`, `error`, `system` (SPEC §4).

Lives in workflow state (plain JSON values, so a checkpoint for continue-as-new is `to_state()`).
`local` is not here: it is the innermost `LoopFrame` of the executing branch.
"""

from __future__ import annotations

from typing import Any

from stepwise_contract.validation import parse_assign_path

from stepwise_worker.errors import StepError
from stepwise_worker.frames import LoopFrame

# meta keys that identify the run; expressions always see the true values and nobody writes them
IDENTITY_KEYS = ("runId", "workflowId", "workflowVersion", "tenantId")


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
        for segment in segments[:-1]:
            node = container.get(segment)
            if not isinstance(node, dict):
                node = {}
                container[segment] = node
            container = node
        container[segments[-1]] = value

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
