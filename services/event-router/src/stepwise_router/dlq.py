"""Dead letters (SPEC §8 step 1 and the max-deliver rule).

A dead letter is the original message bytes, published to `workflow.dlq.<tenant>` in the
`WORKFLOW_EVENTS_DLQ` stream with the reason code and a one-line detail in headers (plus the
original subject, so an operator can republish it). Its `Nats-Msg-Id` is derived from the original
stream sequence: if the ack after a dead-lettering is lost and the message comes back, the DLQ
stores it once.
"""

from __future__ import annotations

import uuid
from typing import Any, Final

import msgspec
from nats.js import JetStreamContext
from stepwise_contract import names
from stepwise_contract.enums import DlqReason

from stepwise_router.metrics import Metrics

# NATS headers are single lines of bounded size.
MAX_DETAIL_CHARS: Final = 1000


def canonical_uuid(value: Any) -> str | None:
    """`value` as a canonical uuid string, or None when it is not a uuid."""
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def subject_tenant(subject: str) -> str | None:
    """The tenant token of `workflow.events.<tenant>.<event_type>`, when it is a uuid."""
    parts = subject.split(".")
    return canonical_uuid(parts[2]) if len(parts) >= 3 else None


def readable_tenant(data: bytes) -> str | None:
    """The `tenant` of an envelope that may be otherwise invalid, when it is a uuid."""
    try:
        doc = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    return canonical_uuid(doc.get("tenant")) if isinstance(doc, dict) else None


def one_line(text: str) -> str:
    flat = " ".join(text.split())
    return flat[:MAX_DETAIL_CHARS]


class DeadLetters:
    def __init__(self, js: JetStreamContext, metrics: Metrics) -> None:
        self._js = js
        self._metrics = metrics

    async def send(
        self,
        *,
        data: bytes,
        subject: str,
        stream_sequence: int,
        reason: DlqReason,
        detail: str,
    ) -> str:
        """Publish the dead letter and wait for JetStream to store it (then count it); returns
        its subject."""
        tenant = readable_tenant(data) or subject_tenant(subject)
        dlq_subject = names.dlq_subject(tenant)
        headers = {
            names.DLQ_REASON_HEADER: reason.value,
            names.DLQ_DETAIL_HEADER: one_line(detail) or reason.value,
            names.DLQ_SUBJECT_HEADER: subject,
            names.MSG_ID_HEADER: f"{names.EVENTS_STREAM}:{stream_sequence}:{reason.value}",
        }
        await self._js.publish(dlq_subject, data, headers=headers)
        self._metrics.dlq.labels(reason.value).inc()
        return dlq_subject
