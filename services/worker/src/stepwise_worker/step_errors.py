"""How the interpreter models failures and early exits (SPEC §3, §5).

    Exception
    ├── StepError      a catchable step failure with a category (SPEC §3); routed to the nearest
    │                  handler (tryCatch, forEach onItemError continue, onError continue) or fails
    │                  the run
    └── ReturnSignal   `control.return`: unwinds every enclosing step; the run SUCCEEDS

Cancellation is never modelled here: it stays `asyncio.CancelledError` (a BaseException), so no
`except StepError` / `except Exception` in the interpreter can swallow it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from stepwise_contract.enums import ErrorCategory
from stepwise_contract.expressions import ExpressionError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ApplicationErrorCategory,
    CancelledError,
    FailureError,
    TimeoutError,
)

# Categories a step error may carry; Cancellation is deliberately absent (never catchable).
CATCHABLE_CATEGORIES = frozenset(
    c.value for c in ErrorCategory if c is not ErrorCategory.CANCELLATION
)


class StepError(Exception):
    """A step failed. `node_path` is the path of the step that failed first (innermost)."""

    def __init__(
        self,
        category: str,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        node_path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.category = category if category in CATCHABLE_CATEGORIES else ErrorCategory.ACTION
        self.message = message
        self.code = code
        self.details = details
        self.node_path = node_path
        self.at: str | None = None

    def locate(self, path: str, at: str) -> StepError:
        """Fill in where and when it failed, once: outer containers keep the innermost step."""
        if self.node_path is None:
            self.node_path = path
        if self.at is None:
            self.at = at
        return self

    def to_json(self) -> dict[str, Any]:
        """`{category, message, nodePath, at, code?, details?}` — error scope and `error_json`."""
        out: dict[str, Any] = {
            "category": str(self.category),
            "message": self.message,
            "nodePath": self.node_path,
            "at": self.at,
        }
        if self.code is not None:
            out["code"] = self.code
        if self.details is not None:
            out["details"] = self.details
        return out

    def __str__(self) -> str:
        return f"{self.category}: {self.message}"


def expression_failure(exc: ExpressionError, path: str) -> StepError:
    """An `ExpressionError` from the contract, named with the step path and the source."""
    located = exc.with_step(path)
    return StepError(
        ErrorCategory.EXPRESSION,
        str(located),
        code="EXPRESSION_FAILED",
        details={"expression": exc.source},
        node_path=path,
    )


def validation_failure(message: str, path: str | None, *, code: str = "INVALID") -> StepError:
    return StepError(ErrorCategory.VALIDATION, message, code=code, node_path=path)


class ReturnSignal(Exception):
    """`control.return` was executed: stop the run now, successfully."""


def action_error(
    category: str, message: str, *, code: str | None = None, details: Any = None
) -> ApplicationError:
    """A modelled action failure: never retried by Temporal, routed by the interpreter."""
    body: dict[str, Any] = {"category": category, "message": message}
    if code is not None:
        body["code"] = code
    if details is not None:
        body["details"] = details
    # BENIGN: an expected outcome the interpreter routes, not a worker fault (Temporal logs it at
    # DEBUG instead of a WARNING with a traceback, and does not count it as a failure)
    return ApplicationError(
        message,
        body,
        type=category,
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


def failure_from_activity(err: FailureError) -> StepError:
    """The interpreter's view of a failed activity; cancellation stays cancellation.

    Regular activities fail with `ActivityError(cause=…)`, local activities with the cause itself.
    Errors modelled by our activities carry `{category, message, code?, details?}` as details;
    anything else is infrastructure that Temporal already retried until it gave up.
    """
    cause: BaseException | None = err.cause if isinstance(err, ActivityError) else err
    if isinstance(cause, CancelledError):
        raise asyncio.CancelledError()
    if isinstance(cause, ApplicationError):
        detail = cause.details[0] if cause.details else None
        if isinstance(detail, dict) and "category" in detail:
            return StepError(
                str(detail["category"]),
                str(detail.get("message") or cause.message),
                code=detail.get("code"),
                details=detail.get("details"),
            )
        return StepError(ErrorCategory.TRANSIENT, cause.message, code=cause.type)
    if isinstance(cause, TimeoutError):
        kind = cause.type.name if cause.type is not None else "UNKNOWN"
        return StepError(ErrorCategory.TIMEOUT, f"activity timed out ({kind})", code="TIMEOUT")
    return StepError(ErrorCategory.TRANSIENT, str(cause or err))
