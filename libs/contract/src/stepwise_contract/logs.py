"""structlog configuration, done once at a service's `main`.

JSON lines by default, a console renderer with `STEPWISE_LOG_FORMAT=console`. Standard-library
loggers (aiohttp, temporalio, nats, asyncpg) go through the same formatter, so every line a service
prints has one shape. Identifiers (`tenant`, `run_id`, `workflow_id`, `step_path`, `event_id`) are
bound per unit of work with `structlog.contextvars.bound_contextvars`.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(*, service: str, log_format: str = "json", level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: structlog.types.Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer()

    def add_service(
        _logger: object, _name: str, event_dict: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    shared.append(add_service)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log is one line per request; the API logs its own request line instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
