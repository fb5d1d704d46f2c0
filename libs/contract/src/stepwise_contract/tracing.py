"""Opt-in OpenTelemetry tracing: one trace from an HTTP request or a NATS message to the activities.

Off unless the standard `OTEL_*` variables ask for it (`OtelSettings.from_env`, parsed once at
`main` as part of `CommonSettings`). A service then calls `configure_tracing(name, settings.otel)`
and hands the provider it returns (None when tracing is off) to the helpers below; with None
every helper is a no-op, so the wiring costs nothing when tracing is off.

How the context travels (W3C `traceparent`):
    HTTP caller ──traceparent──► API server span (`tracing_middleware`)
        └─► StartWorkflow / SignalWorkflow (Temporal header, `temporal_interceptors`)
              └─► RunWorkflow ─► StartActivity ─► RunActivity (the worker's interceptor)
    producer / API / worker publish ──traceparent header──► NATS message (`traced_jetstream`)
        └─► router span (`traced_message_handler`) ─► SignalWorkflow / StartWorkflow ─► workflow

Heavy imports (the SDK exporters, temporalio's interceptor) happen only when tracing is on.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any, Final

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry import propagate, trace

# TracerProvider is re-exported: services annotate the provider they pass around with it.
from opentelemetry.sdk.trace import TracerProvider as TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

from stepwise_contract.names import MSG_ID_HEADER

if TYPE_CHECKING:
    import temporalio.client
    from opentelemetry.sdk.trace.export import SpanExporter

DEFAULT_OTLP_ENDPOINT: Final = "http://localhost:4318"
TRACES_PATH: Final = "/v1/traces"
EXPORTERS: Final = frozenset({"otlp", "console"})
SAMPLERS: Final = frozenset(
    {
        "always_on",
        "always_off",
        "traceidratio",
        "parentbased_always_on",
        "parentbased_always_off",
        "parentbased_traceidratio",
    }
)
# Probes and scrapes would drown the traces that matter.
_UNTRACED_PATHS: Final = frozenset({"/healthz", "/readyz", "/metrics"})
_TRUE: Final = frozenset({"1", "true", "yes", "on"})

MessageHandler = Callable[[Msg], Awaitable[None]]


class TracingConfigError(ValueError):
    """An `OTEL_*` value Stepwise cannot honour (CommonSettings turns it into SettingsError)."""


class OtelSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What the `OTEL_*` variables ask for. No exporter = tracing off (the default)."""

    exporters: tuple[str, ...] = ()
    # full URL of the OTLP/HTTP traces endpoint
    endpoint: str = DEFAULT_OTLP_ENDPOINT + TRACES_PATH
    headers: dict[str, str] = {}
    timeout_s: float = 10.0
    # OTEL_SERVICE_NAME; empty = the service's own name
    service_name: str = ""
    resource_attributes: dict[str, str] = {}
    sampler: str = "parentbased_always_on"
    sampler_arg: float = 1.0

    @property
    def enabled(self) -> bool:
        return bool(self.exporters)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OtelSettings:
        """Standard variables, opt-in: tracing is on when `OTEL_TRACES_EXPORTER` names an exporter
        or an OTLP endpoint is set (the SDK's own default of "always otlp" would make every
        service without a collector log export errors)."""

        def get(name: str) -> str:
            return environ.get(name, "").strip()

        if get("OTEL_SDK_DISABLED").lower() in _TRUE:
            return cls()
        endpoint = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        base = get("OTEL_EXPORTER_OTLP_ENDPOINT")
        raw_exporters = get("OTEL_TRACES_EXPORTER")
        if raw_exporters:
            exporters = tuple(e.strip() for e in raw_exporters.split(",") if e.strip())
        else:
            exporters = ("otlp",) if endpoint or base else ()
        exporters = tuple(e for e in exporters if e != "none")
        unknown = sorted(set(exporters) - EXPORTERS)
        if unknown:
            raise TracingConfigError(
                f"OTEL_TRACES_EXPORTER={raw_exporters!r}: unsupported {unknown}; "
                f"use {sorted(EXPORTERS)} or none"
            )
        protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if "otlp" in exporters and protocol not in ("", "http/protobuf"):
            raise TracingConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: Stepwise exports OTLP over"
                " http/protobuf (collector port 4318)"
            )
        if not endpoint:
            endpoint = (base or DEFAULT_OTLP_ENDPOINT).rstrip("/") + TRACES_PATH
        sampler = (get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
        if sampler not in SAMPLERS:
            raise TracingConfigError(
                f"OTEL_TRACES_SAMPLER={sampler!r} must be one of {sorted(SAMPLERS)}"
            )
        return cls(
            exporters=exporters,
            endpoint=endpoint,
            headers=_pairs(
                "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                get("OTEL_EXPORTER_OTLP_TRACES_HEADERS") or get("OTEL_EXPORTER_OTLP_HEADERS"),
            ),
            timeout_s=_seconds(
                get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") or get("OTEL_EXPORTER_OTLP_TIMEOUT")
            ),
            service_name=get("OTEL_SERVICE_NAME"),
            resource_attributes=_pairs("OTEL_RESOURCE_ATTRIBUTES", get("OTEL_RESOURCE_ATTRIBUTES")),
            sampler=sampler,
            sampler_arg=_ratio(get("OTEL_TRACES_SAMPLER_ARG")),
        )


def _pairs(name: str, raw: str) -> dict[str, str]:
    """`k1=v1,k2=v2` with URL-encoded values (the OTEL list format)."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TracingConfigError(f"{name}: {item!r} is not key=value")
        out[key.strip()] = urllib.parse.unquote(value.strip())
    return out


def _seconds(raw: str) -> float:
    """OTLP timeouts are milliseconds."""
    if not raw:
        return 10.0
    try:
        millis = float(raw)
    except ValueError:
        raise TracingConfigError(
            f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r} is not milliseconds"
        ) from None
    if millis <= 0:
        raise TracingConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT={raw!r} must be > 0")
    return millis / 1000.0


def _ratio(raw: str) -> float:
    if not raw:
        return 1.0
    try:
        value = float(raw)
    except ValueError:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise TracingConfigError(f"OTEL_TRACES_SAMPLER_ARG={raw!r} must be within 0..1")
    return value


def configure_tracing(
    service_name: str,
    settings: OtelSettings | None,
    *,
    exporter: SpanExporter | None = None,
    install_global: bool = True,
) -> TracerProvider | None:
    """A tracer provider exporting as `settings` say, or None when tracing is off.

    `exporter` adds one more exporter, synchronously (tests pass an in-memory one). With
    `install_global` the provider also becomes OpenTelemetry's global one (once per process), so
    libraries that trace through the global API land in the same pipeline.
    """
    settings = settings or OtelSettings()
    if not settings.enabled and exporter is None:
        return None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create(
        {**settings.resource_attributes, "service.name": settings.service_name or service_name}
    )
    provider = TracerProvider(resource=resource, sampler=_sampler(settings))
    for name in settings.exporters:
        if name == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(
                endpoint=settings.endpoint, headers=settings.headers, timeout=settings.timeout_s
            )
            provider.add_span_processor(BatchSpanProcessor(otlp))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    if install_global:
        trace.set_tracer_provider(provider)
    return provider


def _sampler(settings: OtelSettings) -> Any:
    from opentelemetry.sdk.trace import sampling

    match settings.sampler:
        case "always_on":
            return sampling.ALWAYS_ON
        case "always_off":
            return sampling.ALWAYS_OFF
        case "traceidratio":
            return sampling.TraceIdRatioBased(settings.sampler_arg)
        case "parentbased_always_off":
            return sampling.DEFAULT_OFF
        case "parentbased_traceidratio":
            return sampling.ParentBasedTraceIdRatio(settings.sampler_arg)
        case _:
            return sampling.DEFAULT_ON


# --- Temporal -------------------------------------------------------------------------------


def temporal_interceptors(
    provider: TracerProvider | None,
) -> list[temporalio.client.Interceptor]:
    """For `connect_temporal(..., interceptors=...)`. temporalio's TracingInterceptor is both a
    client and a worker interceptor, so a worker built on that client traces workflows and
    activities too; the context rides in the Temporal headers of start, signal and activity."""
    if provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(provider.get_tracer("stepwise.temporal"))]


# --- HTTP -----------------------------------------------------------------------------------


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


# --- NATS -----------------------------------------------------------------------------------


def inject_trace_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """`headers` plus `traceparent` (and `tracestate`) of the current span, if any."""
    out: dict[str, str] = dict(headers or {})
    propagate.inject(out)
    return out


def extract_trace_context(headers: Mapping[str, str] | None) -> Any:
    """The OpenTelemetry context a message's headers carry (empty context when none)."""
    carrier: MutableMapping[str, str] = dict(headers or {})
    return propagate.extract(carrier)


def _subject_family(subject: str) -> str:
    """`workflow.events.<tenant>.<type>` → `workflow.events`: span names stay bounded."""
    return ".".join(subject.split(".")[:2])


class TracingJetStreamContext(JetStreamContext):
    """JetStream whose `publish` opens a PRODUCER span and puts its `traceparent` in the
    message headers, so the consumer's span continues the publisher's trace."""

    def __init__(self, conn: NATS, tracer: trace.Tracer, **options: Any) -> None:
        super().__init__(conn, **options)
        self._tracer = tracer

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109  # JetStreamContext.publish's signature
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> api.PubAck:
        attributes: dict[str, str] = {
            "messaging.system": "nats",
            "messaging.destination.name": subject,
        }
        if headers and MSG_ID_HEADER in headers:
            attributes["messaging.message.id"] = str(headers[MSG_ID_HEADER])
        with self._tracer.start_as_current_span(
            f"{_subject_family(subject)} publish", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            return await super().publish(
                subject,
                payload,
                timeout=timeout,
                stream=stream,
                headers=inject_trace_headers(headers),
                msg_ttl=msg_ttl,
            )


def traced_jetstream(nc: NATS, provider: TracerProvider | None) -> JetStreamContext:
    """`nc.jetstream()`, with trace propagation on publish when tracing is on."""
    if provider is None:
        return nc.jetstream()
    return TracingJetStreamContext(nc, provider.get_tracer("stepwise.nats"))


def traced_message_handler(
    handler: MessageHandler, provider: TracerProvider | None
) -> MessageHandler:
    """Wrap a consumer's per-message handler in a CONSUMER span whose parent is the publisher's
    `traceparent`: whatever the handler does (signal, start) joins the producer's trace."""
    if provider is None:
        return handler
    tracer = provider.get_tracer("stepwise.nats")

    async def traced(msg: Msg) -> None:
        headers = msg.headers or {}
        attributes: dict[str, str] = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
        }
        if MSG_ID_HEADER in headers:
            attributes["messaging.message.id"] = headers[MSG_ID_HEADER]
        with tracer.start_as_current_span(
            f"{_subject_family(msg.subject)} process",
            context=extract_trace_context(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            await handler(msg)

    return traced
