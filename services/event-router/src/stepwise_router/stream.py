"""The JetStream topology the router relies on, created or updated at every start (idempotent).

- `WORKFLOW_EVENTS` on `workflow.events.>`: file storage, a 2-minute duplicate window (a producer's
  retry with the same `Nats-Msg-Id` is stored once), messages kept 7 days (limits retention, so the
  stream can be replayed or inspected after routing).
- `WORKFLOW_EVENTS_DLQ` on `workflow.dlq.>`: its own stream, outside the events stream's subjects,
  so a dead letter is never routed again; kept 30 days.
- The durable pull consumer shared by every router replica: explicit acks, `ack_wait`,
  `max_deliver`. The retry backoff is the router's: each nak carries the delay of its delivery
  (`STEPWISE_ROUTER_BACKOFF_S`, see `event_router.py`). The consumer's own `backoff` list is
  deliberately not set: JetStream then takes `backoff[0]` as the ack wait and measures a nak's
  delay from the backoff entry of the delivery, so a nak of delivery n would wait
  `backoff[n] - backoff[0] + delay` (a 0.2 s nak took 5 s in our test) — the two schedules cannot
  be combined.

Several replicas starting at once may race to create a stream: whoever loses updates instead.
On a JetStream cluster the API can time out or answer "temporarily unavailable" while the meta
leader is being elected (a fresh cluster, or the leader node just died): those are retried for up
to `TOPOLOGY_RETRY_S` before the router gives up and exits.
"""

from __future__ import annotations

import asyncio
import time
from typing import Final

import nats.errors
import structlog
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError, ServiceUnavailableError
from stepwise_contract import names

log = structlog.get_logger()

DUPLICATE_WINDOW_S: Final = 120.0
EVENTS_MAX_AGE_S: Final = 7 * 24 * 3600.0
DLQ_MAX_AGE_S: Final = 30 * 24 * 3600.0
TOPOLOGY_RETRY_S: Final = 60.0


def events_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        num_replicas=replicas,
        name=names.EVENTS_STREAM,
        subjects=[names.EVENTS_SUBJECTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=EVENTS_MAX_AGE_S,
    )


def dlq_stream_config(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        num_replicas=replicas,
        name=names.DLQ_STREAM,
        subjects=[names.DLQ_SUBJECTS],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=DUPLICATE_WINDOW_S,
        max_age=DLQ_MAX_AGE_S,
    )


def consumer_config(*, max_deliver: int, ack_wait_s: float, max_ack_pending: int) -> ConsumerConfig:
    return ConsumerConfig(
        durable_name=names.EVENTS_CONSUMER,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=max_deliver,
        max_ack_pending=max_ack_pending,
    )


async def _upsert_stream(js: JetStreamContext, config: StreamConfig) -> None:
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except BadRequestError:
            pass  # another replica created it meanwhile: fall through to the update
    await js.update_stream(config)


async def ensure_topology(
    js: JetStreamContext,
    *,
    max_deliver: int,
    ack_wait_s: float,
    max_ack_pending: int = 1000,
    replicas: int = 1,
) -> None:
    """Create or update both streams and the durable consumer (creating a durable that exists
    updates its editable fields: ack wait, max deliver, max ack pending). `replicas`
    (`STEPWISE_NATS_STREAM_REPLICAS`): copies of each stream on a JetStream cluster; updating
    it on an existing stream makes the cluster add or drop copies (the consumer follows the
    stream's count)."""
    deadline = time.monotonic() + TOPOLOGY_RETRY_S
    delay = 0.2
    while True:
        try:
            await _upsert_stream(js, events_stream_config(replicas))
            await _upsert_stream(js, dlq_stream_config(replicas))
            await js.add_consumer(
                names.EVENTS_STREAM,
                consumer_config(
                    max_deliver=max_deliver, ack_wait_s=ack_wait_s, max_ack_pending=max_ack_pending
                ),
            )
            return
        except (nats.errors.TimeoutError, nats.errors.NoRespondersError, ServiceUnavailableError):
            if time.monotonic() + delay > deadline:
                raise
            log.warning("jetstream_topology_retry", delay_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
