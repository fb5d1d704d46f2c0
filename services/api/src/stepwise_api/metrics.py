"""Request latency by route template and status, and one structured line per request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Histogram

log = structlog.get_logger("stepwise_api.requests")

REQUEST_SECONDS = Histogram(
    "stepwise_api_request_duration_seconds",
    "HTTP request latency of the Stepwise API",
    ("method", "route", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
_QUIET = {"/healthz", "/readyz", "/metrics"}


def route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def metrics_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_template(request)
        REQUEST_SECONDS.labels(request.method, route, str(status)).observe(elapsed)
        if route not in _QUIET:
            log.info(
                "request",
                method=request.method,
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
