"""structlog configuration, done once at a service's `main`.

JSON lines by default, a console renderer with `STEPWISE_LOG_FORMAT=console`. Standard-library
loggers (aiohttp, temporalio, nats, asyncpg) go through the same formatter, so every line a service
prints has one shape. Identifiers (`tenant`, `run_id`, `workflow_id`, `step_path`, `event_id`) are
bound per unit of work with `structlog.contextvars.bound_contextvars`.

An exception is rendered the same bounded way in both formats: its type, its message cut at 2,000
characters and its innermost 20 frames; never locals, never a 1,000-frame `RecursionError`
(rendering those once took a service down).
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import Final

import structlog

MAX_EXCEPTION_MESSAGE: Final = 2000
MAX_EXCEPTION_FRAMES: Final = 20

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]


def _exc_info(value: object) -> _ExcInfo | None:
    if value is True:
        value = sys.exc_info()
    if isinstance(value, BaseException):
        return type(value), value, value.__traceback__
    if isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        return value
    return None


def _message(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a broken __str__ must not break logging
        text = "<unprintable>"
    if len(text) > MAX_EXCEPTION_MESSAGE:
        text = text[:MAX_EXCEPTION_MESSAGE] + f"... ({len(text)} characters)"
    return f"{type(exc).__module__}.{type(exc).__qualname__}: {text}"


def render_exception(exc: BaseException) -> str:
    """Type, bounded message and the innermost frames (where it was raised) of `exc`, plus the
    type and message of what caused it."""
    frames = traceback.extract_tb(exc.__traceback__)
    lines = ["Traceback (innermost frames):\n"]
    if len(frames) > MAX_EXCEPTION_FRAMES:
        lines.append(f"  ... {len(frames) - MAX_EXCEPTION_FRAMES} outer frames left out\n")
    lines.extend(traceback.format_list(frames[-MAX_EXCEPTION_FRAMES:]))
    lines.append(_message(exc))
    cause = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    if cause is not None:
        lines.append(f"\ncaused by {_message(cause)}")
    return "".join(lines)


def bounded_exception(
    _logger: object, _name: str, event_dict: structlog.types.EventDict
) -> structlog.types.EventDict:
    """`exc_info` → an `exception` string from `render_exception` (both log formats)."""
    info = _exc_info(event_dict.pop("exc_info", None))
    if info is not None:
        event_dict["exception"] = render_exception(info[1])
    return event_dict


def configure_logging(*, service: str, log_format: str = "json", level: str = "INFO") -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        bounded_exception,
    ]
    renderer: structlog.types.Processor
    if log_format == "console":
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    else:
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
