"""Closed vocabularies of the data model (SPEC §2, §3, §7)."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    WAITING = "WAITING"  # quota pause only
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELED)


class StepStatus(StrEnum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"


class WaitType(StrEnum):
    EVENT = "event"
    TIME = "time"
    HUMAN = "human"
    QUOTA = "quota"


class WaitStatus(StrEnum):
    WAITING = "WAITING"
    RESOLVED = "RESOLVED"
    CANCELED = "CANCELED"


class InvocationStatus(StrEnum):
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class TaskStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


class ErrorCategory(StrEnum):
    VALIDATION = "ValidationError"
    EXPRESSION = "ExpressionError"
    TRANSIENT = "TransientError"
    ACTION = "ActionError"
    TIMEOUT = "TimeoutError"
    QUOTA = "QuotaExceeded"
    CHILD = "ChildWorkflowError"
    CANCELLATION = "Cancellation"  # never catchable


class Role(StrEnum):
    READ = "read"
    MANAGE = "manage"
    PUBLISH = "publish"
    ADMIN = "admin"

    def grants(self, needed: Role) -> bool:
        """read ⊂ manage ⊂ admin and read ⊂ publish ⊂ admin; publish does not include manage."""
        if self is needed or self is Role.ADMIN:
            return True
        return needed is Role.READ


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARN = "WARN"
    ERROR = "ERROR"


class LogSource(StrEnum):
    RUNTIME = "runtime"
    API = "api"
    WORKER = "worker"
    ROUTER = "router"
    SWEEPER = "sweeper"


class DlqReason(StrEnum):
    INVALID_JSON = "INVALID_JSON"
    INVALID_ENVELOPE = "INVALID_ENVELOPE"
    TENANT_SUBJECT_MISMATCH = "TENANT_SUBJECT_MISMATCH"
    MAX_DELIVER = "MAX_DELIVER"
