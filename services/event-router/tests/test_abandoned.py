"""A message JetStream stops delivering without an ack (the router crashed on every delivery)
is dead-lettered from the max-deliveries advisory — against the real nats-server.

The test plays the crashing router: it pulls the message from a consumer of its own with a short
ack wait and never acks it.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import msgspec
import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from prometheus_client import CollectorRegistry
from stepwise_contract import names
from stepwise_router.abandoned import AbandonedWatcher
from stepwise_router.dlq import DeadLetters
from stepwise_router.metrics import Metrics
from stepwise_router.stream import dlq_stream_config

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_a_message_never_acked_is_dead_lettered(
    js: JetStreamContext, nats_url: str, bus: object, tenant_id: str
) -> None:
    suffix = uuid.uuid4().hex[:8]
    stream, durable, prefix = f"ABANDONED_{suffix}", f"crashing_{suffix}", f"abandoned.{suffix}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{prefix}.>"]))
    with contextlib.suppress(Exception):  # the router tests' topology may have made it already
        await js.add_stream(dlq_stream_config())
    await js.add_consumer(
        stream,
        ConsumerConfig(
            durable_name=durable, ack_policy=AckPolicy.EXPLICIT, max_deliver=2, ack_wait=1.0
        ),
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    nc = await nats.connect(nats_url, name="abandoned-watcher")
    watcher = AbandonedWatcher(
        nc, nc.jetstream(), DeadLetters(nc.jetstream(), metrics), stream=stream, consumer=durable
    )
    sub = await watcher.subscribe()
    puller = await js.pull_subscribe_bind(durable, stream=stream)
    try:
        envelope = msgspec.json.encode(
            {"event_id": str(uuid.uuid4()), "event_type": "POISON", "tenant": tenant_id}
        )
        subject = f"{prefix}.{tenant_id}.POISON"
        ack = await js.publish(subject, envelope)
        for _ in range(2):  # two deliveries, neither acked: the "router" died each time
            [msg] = await puller.fetch(1, timeout=5)
            assert msg.data == envelope
            await asyncio.sleep(1.3)
        # the next pull finds the message past max deliver: JetStream gives up and advises
        with contextlib.suppress(nats.errors.TimeoutError):
            await puller.fetch(1, timeout=2)

        [letter] = await bus.dead_letters(tenant_id, 1, within=15)  # type: ignore[attr-defined]
        assert letter.data == envelope
        assert letter.headers[names.DLQ_REASON_HEADER] == "MAX_DELIVER"
        assert "never acked" in letter.headers[names.DLQ_DETAIL_HEADER]
        assert letter.headers[names.DLQ_SUBJECT_HEADER] == subject
        assert (
            registry.get_sample_value("stepwise_router_dlq_total", {"reason": "MAX_DELIVER"}) == 1.0
        )
        assert ack.seq is not None
    finally:
        await puller.unsubscribe()
        await sub.unsubscribe()
        await nc.drain()
        await js.delete_stream(stream)
