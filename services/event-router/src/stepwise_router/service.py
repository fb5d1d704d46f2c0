"""stepwise-router: wiring of dependencies, the ops server and the SIGTERM-aware lifetime."""

from __future__ import annotations

import nats
import structlog
from stepwise_contract.db import create_pool
from stepwise_contract.logs import configure_logging
from stepwise_contract.ops import ops_server, stop_event_on_signals
from stepwise_contract.readiness import nats_check, postgres_check, temporal_check
from stepwise_contract.temporal import connect_temporal

from stepwise_router.settings import Settings

log = structlog.get_logger("stepwise_router")


async def serve(settings: Settings) -> None:
    common = settings.common
    configure_logging(
        service="stepwise-router", log_format=common.log_format, level=common.log_level
    )
    stop = stop_event_on_signals()
    pool = await create_pool(common.database_url)
    client = await connect_temporal(common.temporal_address, common.temporal_namespace)
    nc = await nats.connect(common.nats_url, name="stepwise-router")
    checks = {
        "postgres": postgres_check(pool),
        "temporal": temporal_check(client),
        "nats": nats_check(nc),
    }
    try:
        async with ops_server(settings.host, settings.port, checks):
            log.info("service_started", port=settings.port)
            await stop.wait()
            log.info("service_stopping")
    finally:
        await nc.drain()
        await pool.close()
    log.info("service_stopped")
