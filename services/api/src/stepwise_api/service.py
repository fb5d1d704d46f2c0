"""stepwise-api: the HTTP server and its SIGTERM-aware lifetime."""

from __future__ import annotations

import structlog
from aiohttp import web
from stepwise_contract.platform.logs import configure_logging
from stepwise_contract.platform.ops import stop_event_on_signals
from stepwise_contract.platform.tracing import configure_tracing

from stepwise_api.app import create_app
from stepwise_api.parser_errors import ProblemAppRunner
from stepwise_api.settings import Settings

log = structlog.get_logger("stepwise_api")


async def serve(settings: Settings) -> None:
    common = settings.common
    configure_logging(service="stepwise-api", log_format=common.log_format, level=common.log_level)
    tracer_provider = configure_tracing("stepwise-api", common.otel)  # None unless OTEL_* ask
    stop = stop_event_on_signals()
    # SIGTERM: stop accepting, let in-flight requests finish (up to the shutdown timeout).
    runner = ProblemAppRunner(
        create_app(settings, tracer_provider), access_log=None, shutdown_timeout=10
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        log.info("service_started", host=settings.host, port=settings.port)
        await stop.wait()
        log.info("service_stopping")
    finally:
        await runner.cleanup()
    log.info("service_stopped")
