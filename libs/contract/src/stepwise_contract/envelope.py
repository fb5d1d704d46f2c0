"""The NATS event envelope (SPEC §8). snake_case on the wire.

Unknown fields are tolerated: producers may add fields and old routers must still route.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from stepwise_contract.json_limits import JsonRefused, decode_json


class EventEnvelope(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    event_type: str
    tenant: str
    event_name: str | None = None
    timestamp: str | None = None
    workflow_correlation_key: str | None = None
    payload: dict[str, Any] | None = None
    payload_schema_ref: str | None = None
    user_id: str | None = None
    execution_id: str | None = None

    @property
    def name(self) -> str:
        """The workflow event name: `event_name`, defaulting to `event_type`."""
        return self.event_name or self.event_type


class EnvelopeError(ValueError):
    """The bytes are not a valid envelope; `code` is the DLQ reason."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


_decoder = msgspec.json.Decoder(EventEnvelope)
_encoder = msgspec.json.Encoder()


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def decode_envelope(data: bytes) -> EventEnvelope:
    """Decode and validate an envelope; raises `EnvelopeError` with a DLQ reason code."""
    try:
        # a NUL is left to the projection write (it fails there and dead-letters on max deliver)
        decode_json(data, what="the event", refuse_nul=False)
    except JsonRefused as exc:
        raise EnvelopeError(exc.code, exc.detail) from None
    try:
        env = _decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise EnvelopeError("INVALID_ENVELOPE", str(exc)) from exc
    if not _is_uuid(env.event_id):
        raise EnvelopeError("INVALID_ENVELOPE", "event_id must be a uuid")
    if not _is_uuid(env.tenant):
        raise EnvelopeError("INVALID_ENVELOPE", "tenant must be a uuid")
    if not env.event_type or not env.event_type.strip():
        raise EnvelopeError("INVALID_ENVELOPE", "event_type must be a non-empty string")
    return env


def encode_envelope(env: EventEnvelope) -> bytes:
    return _encoder.encode(env)
