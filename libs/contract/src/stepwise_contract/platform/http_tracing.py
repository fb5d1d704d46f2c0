"""Tracing of the API's HTTP requests: a SERVER span per request, parented by the caller."""

from __future__ import annotations

from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

# Probes and scrapes would drown the traces that matter.
_UNTRACED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})


def tracing_middlewares(provider: TracerProvider | None) -> list[Middleware]:
    """An aiohttp middleware opening a SERVER span per request (parent: the caller's
    `traceparent`), named by route template so names stay bounded; none when tracing is off.
    Put it first, so the span sees the final status of the other middlewares' answer:
    `middlewares=[*tracing_middlewares(provider), ...]`."""
    if provider is None:
        return []
    tracer = provider.get_tracer("stepwise.http")

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in _UNTRACED_PATHS:
            return await handler(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        with tracer.start_as_current_span(
            f"{request.method} {route}",
            context=propagate.extract(request.headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": route,
                "url.path": request.path,
            },
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                _http_status(span, exc.status)
                raise
            _http_status(span, response.status)
            return response

    return [middleware]


def _http_status(span: trace.Span, status: int) -> None:
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
