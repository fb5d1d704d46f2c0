"""`POST /api/workflow/events`: the envelope goes to JetStream — the router is the only routing
path (SPEC §7, §8). With `?wait=N` the API then polls the router's record of the event."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from nats.js import JetStreamContext
from stepwise_contract.envelope import EventEnvelope, encode_envelope
from stepwise_contract.http import PublishEventRequest
from stepwise_contract.names import (
    EVENT_NAME_RULE,
    MSG_ID_HEADER,
    event_subject,
    is_valid_event_name,
)

from stepwise_api import event_store
from stepwise_api.errors import ApiError

log = structlog.get_logger("stepwise_api.events")


def envelope_for(tenant: uuid.UUID, body: PublishEventRequest) -> EventEnvelope:
    if not is_valid_event_name(body.event_name):
        raise ApiError(400, "INVALID_EVENT_NAME", f"eventName must be {EVENT_NAME_RULE}")
    event_id = body.event_id or str(uuid.uuid4())
    try:
        event_id = str(uuid.UUID(event_id))
    except ValueError:
        raise ApiError(400, "INVALID_BODY", "eventId must be a uuid") from None
    return EventEnvelope(
        event_id=event_id,
        event_type=body.event_name,
        event_name=body.event_name,
        tenant=str(tenant),
        timestamp=datetime.now(UTC).isoformat(),
        workflow_correlation_key=body.correlation_key,
        payload=body.payload,
        payload_schema_ref=body.payload_schema_ref,
    )


async def publish(js: JetStreamContext, envelope: EventEnvelope) -> bool:
    """Publish with `Nats-Msg-Id` = event id; returns whether JetStream saw it as a duplicate."""
    try:
        ack = await js.publish(
            event_subject(envelope.tenant, envelope.event_type),
            encode_envelope(envelope),
            headers={MSG_ID_HEADER: envelope.event_id},
            timeout=5,
        )
    except Exception as exc:
        log.error("event_publish_failed", event_id=envelope.event_id, error=str(exc))
        raise ApiError(
            503,
            "EVENT_PUBLISH_FAILED",
            "the event could not be published to NATS JetStream; retry with the same eventId",
            eventId=envelope.event_id,
        ) from None
    return bool(ack.duplicate)


async def wait_for_routing(
    pool: asyncpg.Pool, tenant: uuid.UUID, event_id: str, wait_s: float
) -> dict[str, Any] | None:
    deadline = time.monotonic() + wait_s
    delay = 0.02
    while True:
        result = await event_store.routing_result(pool, tenant, event_id)
        if result is not None:
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 1.5, 0.25)
