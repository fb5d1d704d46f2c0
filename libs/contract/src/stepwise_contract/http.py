"""HTTP request bodies (SPEC §7): camelCase, unknown fields rejected."""

from __future__ import annotations

from typing import Any

import msgspec

from stepwise_contract.dsl import RunPriority


class Body(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    """Base of every request body."""


class CreateDefinitionRequest(Body, frozen=True, kw_only=True):
    definition: dict[str, Any]
    key: str | None = None


class ReplaceDefinitionRequest(Body, frozen=True, kw_only=True):
    definition: dict[str, Any]


class PatchDefinitionRequest(Body, frozen=True, kw_only=True):
    is_paused: bool | None = None
    # UNSET = leave as is, None = remove the limit
    concurrency_limit: int | msgspec.UnsetType | None = msgspec.UNSET


class PublishRequest(Body, frozen=True, kw_only=True):
    version: int | None = None


class LaunchRequest(Body, frozen=True, kw_only=True):
    workflow_id: str  # the workflow's id, or the key it was created with
    workflow_version: int | None = None
    payload: dict[str, Any] = {}
    # None = the definition's priority; more urgent than it needs an admin key
    priority: RunPriority | None = None


class CancelRequest(Body, frozen=True, kw_only=True):
    reason: str


class ReplayRequest(Body, frozen=True, kw_only=True):
    reason: str
    # absent = replay the original, unredacted input
    payload: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET
    # None = the replayed run's priority
    priority: RunPriority | None = None


class QuotaResumeRequest(Body, frozen=True, kw_only=True):
    reason: str = ""


class PublishEventRequest(Body, frozen=True, kw_only=True):
    event_name: str
    correlation_key: str | None = None
    payload: dict[str, Any] = {}
    event_id: str | None = None
    payload_schema_ref: str | None = None


class CompleteTaskRequest(Body, frozen=True, kw_only=True):
    payload: dict[str, Any] = {}
