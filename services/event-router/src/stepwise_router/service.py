"""stepwise-router: wiring of dependencies, the ops server and the SIGTERM-aware lifetime.

SIGTERM/SIGINT: the consumer stops pulling, finishes its in-flight messages, then the NATS
connection is drained and the pool closed; the process exits 0. `/readyz` checks Postgres,
Temporal and NATS.
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from nats.aio.client import Client as NATS
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.nats_connection import connect_nats
from stepwise_contract.platform.nats_tracing import traced_message_handler
from stepwise_contract.platform.ops import ops_server
from stepwise_contract.platform.readiness import nats_check, postgres_check, temporal_check
from stepwise_contract.platform.service_start import connect_service_temporal, start_service
from stepwise_contract.platform.tracing import (
    TracerProvider,
    temporal_interceptors,
)
from temporalio.client import Client

from stepwise_router.abandoned import AbandonedWatcher
from stepwise_router.consumer import EventConsumer
from stepwise_router.correlation import Correlation
from stepwise_router.dlq import DeadLetters
from stepwise_router.event_ledger import Ledger
from stepwise_router.event_router import EventRouter
from stepwise_router.group_commit import Batching
from stepwise_router.metrics import Metrics
from stepwise_router.settings import Settings
from stepwise_router.stream import ensure_topology
from stepwise_router.triggers import TriggerLauncher
from stepwise_router.wait_signaller import WaitSignaller

log = structlog.get_logger("stepwise_router")


async def run_router(
    settings: Settings,
    *,
    pool: asyncpg.Pool,
    client: Client,
    nc: NATS,
    metrics: Metrics,
    stop: asyncio.Event,
    tracer_provider: TracerProvider | None = None,
    topology_ready: asyncio.Event | None = None,
) -> None:
    """Ensure the streams and the consumer (then set `topology_ready`), then route events until
    `stop` is set."""
    js = nc.jetstream()
    await ensure_topology(
        js,
        max_deliver=settings.max_deliver,
        ack_wait_s=settings.ack_wait_s,
        replicas=settings.common.nats.stream_replicas,
    )
    if topology_ready is not None:
        topology_ready.set()
    dead_letters = DeadLetters(js, metrics)

    def observe(step: str, size: int) -> None:
        metrics.batch_size.labels(step).observe(size)

    # every message in flight may share a statement with the others (group commit)
    batching = Batching(settings.concurrency, observe)
    router = EventRouter(
        ledger=Ledger(pool, batching),
        signaller=WaitSignaller(pool, client, batching),
        launcher=TriggerLauncher(pool, client, batching),
        dead_letters=dead_letters,
        correlation=Correlation(settings.correlation_paths),
        metrics=metrics,
        max_deliver=settings.max_deliver,
        backoff_s=settings.backoff_s,
    )
    consumer = EventConsumer(
        nc,
        # a span per message, continuing the publisher's traceparent
        traced_message_handler(router.handle, tracer_provider),
        concurrency=settings.concurrency,
        batch=settings.batch,
        ack_wait_s=settings.ack_wait_s,
    )
    metrics.in_flight.set_function(lambda: consumer.in_flight)
    # messages JetStream stops delivering unacked (a poison message crashing the router)
    abandoned = await AbandonedWatcher(nc, js, dead_letters).subscribe()
    try:
        await consumer.run(stop)
    finally:
        with contextlib.suppress(Exception):
            await abandoned.unsubscribe()


async def _log_nats_error(exc: Exception) -> None:
    log.warning("nats_error", error=str(exc))


async def _log_nats_disconnected() -> None:
    log.warning("nats_disconnected")


async def _log_nats_reconnected() -> None:
    log.info("nats_reconnected")


async def serve(settings: Settings) -> None:
    common = settings.common
    tracer_provider, stop = start_service("stepwise-router", common)
    # The steps' statements are grouped, so connections serve batches (one per step at a time),
    # failed batches retried item by item and trigger starts; plus readiness checks.
    pool = await create_pool(common.database_url, max_size=settings.db_pool_size)
    try:
        client = await connect_service_temporal(
            common,
            pool,
            interceptors=temporal_interceptors(tracer_provider),
        )
        nc = await connect_nats(
            common.nats,
            name="stepwise-router",
            max_reconnect_attempts=-1,  # a NATS restart must not end the router
            error_cb=_log_nats_error,
            disconnected_cb=_log_nats_disconnected,
            reconnected_cb=_log_nats_reconnected,
        )
        # Not ready before the streams exist: on a cluster electing its meta leader creating them
        # takes seconds, and a publisher or a dead-letter read meanwhile finds no stream.
        topology_ready = asyncio.Event()

        async def topology_check() -> None:
            if not topology_ready.is_set():
                raise RuntimeError("creating the JetStream streams and consumer")

        checks = {
            "postgres": postgres_check(pool),
            "temporal": temporal_check(client),
            "nats": nats_check(nc),
            "jetstream": topology_check,
        }
        try:
            async with ops_server(settings.host, settings.port, checks):
                log.info("service_started", port=settings.port, concurrency=settings.concurrency)
                await run_router(
                    settings,
                    pool=pool,
                    client=client,
                    nc=nc,
                    metrics=Metrics(),
                    stop=stop,
                    tracer_provider=tracer_provider,
                    topology_ready=topology_ready,
                )
                log.info("service_stopping")
        finally:
            await nc.drain()
    finally:
        await pool.close()
    log.info("service_stopped")
