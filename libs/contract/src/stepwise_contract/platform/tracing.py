"""Opt-in OpenTelemetry tracing: one trace from an HTTP request or a NATS message to the activities.

Off unless the standard `OTEL_*` variables ask for it (`OtelSettings.from_env`, parsed once at
`main` as part of `CommonSettings`). A service then calls `configure_tracing(name, settings.otel)`
and hands the provider it returns (None when tracing is off) to the helpers, here and in
`http_tracing` / `nats_tracing`; with None every helper is a no-op, so the wiring costs nothing
when tracing is off.

How the context travels (W3C `traceparent`):
    HTTP caller ──traceparent──► API server span (`http_tracing.tracing_middlewares`)
        └─► StartWorkflow / SignalWorkflow (Temporal header, `temporal_interceptors`)
              └─► RunWorkflow ─► StartActivity ─► RunActivity (the worker's interceptor)
    producer / API / worker publish ──traceparent header──► NATS message
    (`nats_tracing.traced_jetstream`)
        └─► router span (`nats_tracing.traced_message_handler`) ─► SignalWorkflow / StartWorkflow

Heavy imports (the SDK exporters, temporalio's interceptor) happen only when tracing is on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry import trace

# TracerProvider is re-exported: services annotate the provider they pass around with it.
from opentelemetry.sdk.trace import TracerProvider as TracerProvider

from stepwise_contract.platform.otel_settings import OtelSettings

if TYPE_CHECKING:
    import temporalio.client
    from opentelemetry.sdk.trace.export import SpanExporter


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
