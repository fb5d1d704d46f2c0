"""A tenant's dead letters: the messages the event router moved to the `WORKFLOW_EVENTS_DLQ`
stream (subject `workflow.dlq.<tenant>`), newest first, with their reason and detail headers.

JetStream reads forward only, so a read starts at `since` (an ephemeral consumer delivering by
start time, no acks) and keeps the newest `limit` of at most `MAX_SCANNED` messages. A body is
shown only when it decodes as JSON, and then redacted like every other document the API returns;
an undecodable body is reported by its size alone (it may hold anything).
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any, Final

import msgspec
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from stepwise_contract import names

from stepwise_api.redaction import Redactor

MAX_SCANNED: Final = 2000
BATCH: Final = 250
FETCH_TIMEOUT_S: Final = 0.5
ORIGINAL_SUBJECT_HEADER: Final = names.DLQ_SUBJECT_HEADER


async def read(
    js: JetStreamContext,
    tenant: uuid.UUID,
    since: datetime,
    limit: int,
    redactor: Redactor,
) -> list[dict[str, Any]]:
    """The newest `limit` dead letters of `tenant` stored at or after `since`; none when the
    stream does not exist yet (no router has started)."""
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.BY_START_TIME,
        opt_start_time=since.astimezone(UTC),
        ack_policy=AckPolicy.NONE,
        inactive_threshold=30.0,
        filter_subject=names.dlq_subject(str(tenant)),
    )
    try:
        sub = await js.pull_subscribe(
            names.dlq_subject(str(tenant)), stream=names.DLQ_STREAM, config=config
        )
    except NotFoundError:
        return []
    kept: list[Any] = []
    consumer: str | None = None
    try:
        info = await sub.consumer_info()
        consumer = info.name
        pending = min(int(info.num_pending or 0), MAX_SCANNED)
        while pending > 0:
            try:
                batch = await sub.fetch(min(BATCH, pending), timeout=FETCH_TIMEOUT_S)
            except (TimeoutError, NatsTimeout):
                break
            pending -= len(batch)
            kept = (kept + batch)[-limit:]
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        if consumer is not None:
            with contextlib.suppress(Exception):
                await js.delete_consumer(names.DLQ_STREAM, consumer)
    return [_letter(msg, redactor) for msg in reversed(kept)]


def _letter(msg: Any, redactor: Redactor) -> dict[str, Any]:
    headers = msg.headers or {}
    meta = msg.metadata
    body: Any = None
    decoded = False
    try:
        body = redactor.document(msgspec.json.decode(msg.data))
        decoded = True
    except (msgspec.DecodeError, UnicodeDecodeError):
        body = None
    envelope = body if isinstance(body, dict) else {}
    return {
        "sequence": meta.sequence.stream,
        "receivedAt": meta.timestamp,
        "subject": msg.subject,
        "originalSubject": headers.get(ORIGINAL_SUBJECT_HEADER),
        "reason": headers.get(names.DLQ_REASON_HEADER),
        "detail": headers.get(names.DLQ_DETAIL_HEADER),
        "eventId": _text(envelope.get("event_id")),
        "eventName": _text(envelope.get("event_name") or envelope.get("event_type")),
        "bodyBytes": len(msg.data),
        "bodyIsJson": decoded,
        "body": body,
    }


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None
