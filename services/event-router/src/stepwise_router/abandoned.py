"""Messages JetStream gave up on: dead-lettered from the consumer's max-deliveries advisory.

The router dead-letters a message itself on its last delivery when routing raised. It cannot when
the router never finishes a delivery — the process crashes on that message (a poison message),
or the handling outlives the ack wait on every delivery. JetStream then stops delivering it and
publishes a max-deliveries advisory naming its stream sequence; without this watcher the event
would sit in the stream with nothing pointing at it. The watcher reads the stored message by its
sequence and dead-letters it (`MAX_DELIVER`, "never acked"), so an operator finds it in the DLQ
like any other.

Every router replica subscribes in one queue group, so each advisory is handled once. The dead
letter's `Nats-Msg-Id` is the one the router's own last-delivery path uses, so a message
dead-lettered both ways is stored once. An advisory published while no router runs is not seen
(NATS core advisories are not persisted).
"""

from __future__ import annotations

from typing import Final

import msgspec
import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from stepwise_contract import names
from stepwise_contract.enums import DlqReason

from stepwise_router.dlq import DeadLetters

log = structlog.get_logger("stepwise_router.abandoned")

QUEUE_GROUP: Final = "stepwise-router-advisories"


def advisory_subject(stream: str, consumer: str) -> str:
    return f"$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{stream}.{consumer}"


class MaxDeliveriesAdvisory(msgspec.Struct, frozen=True):
    stream_seq: int
    deliveries: int = 0


_decode_advisory = msgspec.json.Decoder(MaxDeliveriesAdvisory).decode


class AbandonedWatcher:
    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        dead_letters: DeadLetters,
        *,
        stream: str = names.EVENTS_STREAM,
        consumer: str = names.EVENTS_CONSUMER,
    ) -> None:
        self._nc = nc
        self._js = js
        self._dead_letters = dead_letters
        self._stream = stream
        self._consumer = consumer

    async def subscribe(self) -> Subscription:
        return await self._nc.subscribe(
            advisory_subject(self._stream, self._consumer), queue=QUEUE_GROUP, cb=self.handle
        )

    async def handle(self, msg: Msg) -> None:
        try:
            advisory = _decode_advisory(msg.data)
        except msgspec.DecodeError as exc:
            log.error("max_deliveries_advisory_unreadable", error=str(exc))
            return
        seq = advisory.stream_seq
        try:
            stored = await self._js.get_msg(self._stream, seq)
            subject = stored.subject or ""
            await self._dead_letters.send(
                data=stored.data or b"",
                subject=subject,
                stream_sequence=seq,
                reason=DlqReason.MAX_DELIVER,
                detail=(
                    f"delivered {advisory.deliveries} times and never acked: the router crashed"
                    " or outlived the ack wait on every delivery"
                ),
            )
        except Exception as exc:
            # Still in the stream (until its max age): the log line names it for an operator.
            log.error("abandoned_event_not_dead_lettered", stream_sequence=seq, error=str(exc))
            return
        log.error(
            "abandoned_event_dead_lettered",
            stream_sequence=seq,
            deliveries=advisory.deliveries,
            subject=subject,
        )
