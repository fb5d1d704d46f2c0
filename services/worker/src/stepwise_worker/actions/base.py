"""What an action is and how one is invoked.

An action is a declaration (`stepwise_contract.actions.ActionDeclaration`: id, version, schemas,
timeout, local or regular activity) plus an async handler `(input, ctx) -> output`. `invoke`
validates the input against the input schema before the handler runs (a `ValidationError`, never
retried), applies the timeout and validates the output.

Errors a handler raises are modelled with `ActionFailure(category=…)`; anything else it raises is an
`ActionError`. Only `TransientError` (and timeouts) are worth retrying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from stepwise_contract.actions import ActionDeclaration
from stepwise_contract.schemas import validate_instance

JSONObject = dict[str, Any]
Publisher = Callable[[str, bytes, dict[str, str]], Awaitable[None]]


class ActionFailure(Exception):
    """A modelled action error: category (SPEC §3), stable code, details."""

    def __init__(
        self,
        message: str,
        *,
        category: str = "ActionError",
        code: str | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.category = category
        self.code = code
        self.details = details

    @property
    def retryable(self) -> bool:
        return self.category in ("TransientError", "TimeoutError")


@dataclass(frozen=True, slots=True)
class ActionSettings:
    allow_private_http: bool = False
    nats_subject_prefix: str = "workflow.events"
    http_max_response_bytes: int = 5 * 1024 * 1024
    http_max_redirects: int = 5
    store_max_value_bytes: int = 256 * 1024


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What a handler may use: identity of the call and the worker's shared resources."""

    tenant_id: str
    run_id: str
    step_path: str
    attempt: int
    idempotency_key: str
    pool: asyncpg.Pool | None = None
    # publish(subject, body, headers) on JetStream; None where the worker has no NATS
    publish: Publisher | None = None
    settings: ActionSettings = field(default_factory=ActionSettings)


Handler = Callable[[JSONObject, ActionContext], Awaitable[JSONObject]]


@dataclass(frozen=True, slots=True)
class Action:
    declaration: ActionDeclaration
    handler: Handler


def _issues_text(schema: Any, instance: Any) -> list[dict[str, str]]:
    return [{"path": i.path, "message": i.message} for i in validate_instance(schema, instance)]


async def invoke(action: Action, payload: Any, ctx: ActionContext) -> JSONObject:
    """Validate, run with the action's timeout, validate the output."""
    decl = action.declaration
    issues = _issues_text(decl.input_schema, payload)
    if issues:
        raise ActionFailure(
            f"input of {decl.id}@{decl.version} is invalid: {issues[0]['message']}",
            category="ValidationError",
            code="INVALID_ACTION_INPUT",
            details={"errors": issues},
        )
    try:
        async with asyncio.timeout(decl.timeout_s):
            output = await action.handler(payload, ctx)
    except ActionFailure:
        raise
    except TimeoutError:
        raise ActionFailure(
            f"{decl.id}@{decl.version} timed out after {decl.timeout_s}s", category="TimeoutError"
        ) from None
    except Exception as exc:
        raise ActionFailure(f"{decl.id}@{decl.version} failed: {exc}") from exc
    issues = _issues_text(decl.output_schema, output)
    if issues:
        raise ActionFailure(
            f"output of {decl.id}@{decl.version} is invalid: {issues[0]['message']}",
            code="INVALID_ACTION_OUTPUT",
            details={"errors": issues},
        )
    return output
