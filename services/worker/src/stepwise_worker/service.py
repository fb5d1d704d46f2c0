"""stepwise-worker: wiring of dependencies, the ops server and the SIGTERM-aware lifetime.

Runs one Temporal worker on the contract task queue (the interpreter workflow, the projection
and action activities). SIGTERM/SIGINT: the worker stops polling, running activities get
`STEPWISE_WORKER_SHUTDOWN_GRACE_S` to finish (workflow tasks simply move to another worker), then
NATS is drained and the pool closed; the process exits 0. `/readyz` checks Postgres, Temporal,
NATS and that the worker is still running.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.nats_connection import connect_nats
from stepwise_contract.platform.nats_tracing import traced_jetstream
from stepwise_contract.platform.ops import ops_server
from stepwise_contract.platform.readiness import nats_check, postgres_check, temporal_check
from stepwise_contract.platform.service_start import connect_service_temporal, start_service
from stepwise_contract.platform.tracing import temporal_interceptors

from stepwise_worker.actions.base import ActionSettings
from stepwise_worker.actions.events import jetstream_publisher
from stepwise_worker.actions.registry import ActionRegistry
from stepwise_worker.activities.expression_evaluation import ExpressionEvaluator
from stepwise_worker.settings import Settings
from stepwise_worker.worker import WorkerOptions, build_worker

log = structlog.get_logger("stepwise_worker")


def worker_options(settings: Settings) -> WorkerOptions:
    return WorkerOptions(
        secret_key=settings.secret_key,
        action_settings=ActionSettings(allow_private_http=settings.http_allow_private),
        max_payload_bytes=settings.max_payload_bytes,
        event_lookback_s=settings.event_lookback_s,
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_local_activities=settings.max_concurrent_local_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
        shutdown_grace_s=settings.shutdown_grace_s,
    )


async def serve(settings: Settings) -> None:
    common = settings.common
    tracer_provider, stop = start_service("stepwise-worker", common)
    registry = ActionRegistry.default()
    pool = await create_pool(common.database_url, max_size=settings.db_pool_size)
    evaluator = ExpressionEvaluator(
        settings.expression_processes, niceness=settings.expression_niceness
    )
    nc = None
    try:
        await evaluator.start()
        client = await connect_service_temporal(
            common,
            pool,
            interceptors=temporal_interceptors(tracer_provider),
        )
        nc = await connect_nats(common.nats, name="stepwise-worker", max_reconnect_attempts=-1)
        worker = build_worker(
            client,
            pool,
            registry=registry,
            options=worker_options(settings),
            publish=jetstream_publisher(traced_jetstream(nc, tracer_provider)),
            evaluator=evaluator,
        )
        running = asyncio.create_task(worker.run(), name="temporal-worker")

        async def worker_check() -> None:
            if running.done():
                raise RuntimeError("the Temporal worker stopped")

        checks = {
            "postgres": postgres_check(pool),
            "temporal": temporal_check(client),
            "nats": nats_check(nc),
            "worker": worker_check,
        }
        async with ops_server(settings.host, settings.port, checks):
            log.info("service_started", port=settings.port, actions=len(registry.catalog()))
            stopped = asyncio.create_task(stop.wait())
            await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if running.done():
                # the worker died on its own (fatal error): exit non-zero through the exception
                running.result()
            log.info("service_stopping")
            await worker.shutdown()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    finally:
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.drain()
        await pool.close()
        evaluator.close()
    log.info("service_stopped")
