"""stepwise-sweeper: wiring of dependencies, the ops server and the SIGTERM-aware lifetime.

Readiness is Postgres and Temporal. On SIGTERM the jobs finish their current batch and the process
exits 0; passes still busy after `STEPWISE_SWEEP_SHUTDOWN_S` are cancelled (their open transaction
rolls back, so no batch is half-applied).
"""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import structlog
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.ops import ops_server
from stepwise_contract.platform.readiness import postgres_check, temporal_check
from stepwise_contract.platform.service_start import connect_service_temporal, start_service
from stepwise_contract.platform.tracing import temporal_interceptors
from temporalio.client import Client

from stepwise_sweeper.jobs.buffer import BufferJob
from stepwise_sweeper.jobs.cancel_enforcement import CancelEnforcementJob
from stepwise_sweeper.jobs.expiry import ExpiryJob
from stepwise_sweeper.jobs.quota import QuotaJob
from stepwise_sweeper.jobs.reconcile import ReconcileJob
from stepwise_sweeper.jobs.retention import RetentionJob
from stepwise_sweeper.jobs.task_failures import TaskFailuresJob
from stepwise_sweeper.metrics import SweeperMetrics
from stepwise_sweeper.scheduler import ScheduledJob, Scheduler
from stepwise_sweeper.settings import Settings

log = structlog.get_logger("stepwise_sweeper")


def build_scheduler(
    settings: Settings, pool: asyncpg.Pool, client: Client, metrics: SweeperMetrics
) -> Scheduler:
    intervals = settings.intervals
    candidates = [
        ScheduledJob(job=ExpiryJob(pool, settings.expiry), interval_s=intervals.expiry),
        ScheduledJob(
            job=ReconcileJob(pool, client, settings.reconcile), interval_s=intervals.reconcile
        ),
        ScheduledJob(job=QuotaJob(pool, client, settings.quota), interval_s=intervals.quota),
        ScheduledJob(job=BufferJob(pool, settings.buffer), interval_s=intervals.buffer),
        ScheduledJob(job=RetentionJob(pool, settings.retention), interval_s=intervals.retention),
        ScheduledJob(
            job=TaskFailuresJob(pool, client, settings.task_failures),
            interval_s=intervals.task_failures,
        ),
        ScheduledJob(
            job=CancelEnforcementJob(pool, client, settings.cancel_enforcement),
            interval_s=intervals.cancel_enforcement,
        ),
    ]
    return Scheduler([c for c in candidates if c.interval_s > 0], on_pass=metrics.record_pass)


async def serve(settings: Settings) -> None:
    common = settings.common
    tracer_provider, stop = start_service("stepwise-sweeper", common)
    # the quota scan takes session advisory locks: keep asyncpg's reset on release
    pool = await create_pool(
        common.database_url, max_size=settings.db_pool_size, session_state=True
    )
    try:
        # Lazy: the Postgres-only jobs (expiry, buffer, retention) run while Temporal is down;
        # readiness reports it, and reconciliation treats it as transient until the deadline.
        client = await connect_service_temporal(
            common,
            pool,
            interceptors=temporal_interceptors(tracer_provider),
            lazy=True,
        )
        checks = {"postgres": postgres_check(pool), "temporal": temporal_check(client)}
        scheduler = build_scheduler(settings, pool, client, SweeperMetrics())
        async with ops_server(settings.host, settings.port, checks):
            log.info("service_started", port=settings.port)
            sweeping = asyncio.create_task(scheduler.run(stop), name="sweeper-scheduler")
            await stop.wait()
            log.info("service_stopping")
            try:
                await asyncio.wait_for(sweeping, settings.shutdown_timeout_s)
            except TimeoutError:
                log.warning("sweep_passes_cancelled", after_s=settings.shutdown_timeout_s)
            with contextlib.suppress(asyncio.CancelledError):
                await sweeping
    finally:
        await pool.close()
    log.info("service_stopped")
