"""stepwise-worker: wiring of dependencies, the ops server and the SIGTERM-aware lifetime."""

from __future__ import annotations

import structlog
from stepwise_contract.db import create_pool
from stepwise_contract.logs import configure_logging
from stepwise_contract.ops import ops_server, stop_event_on_signals
from stepwise_contract.readiness import postgres_check, temporal_check
from stepwise_contract.temporal import connect_temporal

from stepwise_worker.settings import Settings

log = structlog.get_logger("stepwise_worker")


async def serve(settings: Settings) -> None:
    common = settings.common
    configure_logging(
        service="stepwise-worker", log_format=common.log_format, level=common.log_level
    )
    stop = stop_event_on_signals()
    pool = await create_pool(common.database_url)
    client = await connect_temporal(common.temporal_address, common.temporal_namespace)
    checks = {"postgres": postgres_check(pool), "temporal": temporal_check(client)}
    try:
        async with ops_server(settings.host, settings.port, checks):
            log.info("service_started", port=settings.port)
            await stop.wait()
            log.info("service_stopping")
    finally:
        await pool.close()
    log.info("service_stopped")
