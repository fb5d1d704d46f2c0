"""`event.publish@1`: publish a business event for the run's tenant (SPEC §6, §8).

The event id is derived from the invocation's idempotency key, which every attempt of the same
call shares: a retried publish carries the same `Nats-Msg-Id`, and JetStream's duplicate window
drops the copy.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Final

from nats.js import JetStreamContext
from stepwise_contract.envelope import EventEnvelope, encode_envelope
from stepwise_contract.names import MSG_ID_HEADER, event_subject

from stepwise_worker.actions.base import ActionContext, ActionFailure, JSONObject, Publisher

# Fixed forever: changing it changes every derived event id and defeats dedupe across a deploy.
_EVENT_ID_NAMESPACE: Final = uuid.UUID("6f0c3a52-4b8e-4d55-9a51-2f7d1c9e8b10")


def event_id_for(idempotency_key: str) -> str:
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"event.publish:{idempotency_key}"))


def jetstream_publisher(js: JetStreamContext, *, timeout_s: float = 5.0) -> Publisher:
    """A `Publisher` that waits for JetStream's ack (so a lost publish is an error, not silence)."""

    async def publish(subject: str, body: bytes, headers: dict[str, str]) -> None:
        await js.publish(subject, body, timeout=timeout_s, headers=headers)

    return publish


async def event_publish(payload: JSONObject, ctx: ActionContext) -> JSONObject:
    # the input schema already refused event types that are not valid subject tokens
    event_type: str = payload["eventType"]
    if ctx.publish is None:
        raise ActionFailure(
            "this worker has no NATS connection to publish with",
            category="TransientError",
            code="PUBLISHER_UNAVAILABLE",
        )
    event_id = event_id_for(ctx.idempotency_key)
    envelope = EventEnvelope(
        event_id=event_id,
        event_type=event_type,
        event_name=event_type,
        tenant=ctx.tenant_id,
        timestamp=datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        workflow_correlation_key=payload.get("correlationKey"),
        payload=payload["payload"],
        execution_id=ctx.run_id,
    )
    try:
        await ctx.publish(
            event_subject(ctx.tenant_id, event_type),
            encode_envelope(envelope),
            {MSG_ID_HEADER: event_id},
        )
    except Exception as exc:
        raise ActionFailure(
            f"publishing {event_type} failed: {exc!r}",
            category="TransientError",
            code="PUBLISH_FAILED",
        ) from exc
    return {"eventId": event_id}
