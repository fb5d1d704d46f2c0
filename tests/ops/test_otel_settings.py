"""`OtelSettings.from_env` (opt-in, standard OTEL_* variables) and `configure_tracing` exporting
over OTLP/HTTP to a real HTTP endpoint."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from stepwise_contract.platform.otel_settings import OtelSettings
from stepwise_contract.platform.settings import CommonSettings, SettingsError
from stepwise_contract.platform.tracing import configure_tracing


def test_off_by_default_and_when_disabled() -> None:
    assert not OtelSettings.from_env({}).enabled
    assert not CommonSettings.from_env({}).otel.enabled
    assert not OtelSettings.from_env({"OTEL_TRACES_EXPORTER": "none"}).enabled
    disabled = {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert not OtelSettings.from_env(disabled).enabled
    assert configure_tracing("svc", OtelSettings()) is None


def test_an_endpoint_turns_otlp_on() -> None:
    settings = CommonSettings.from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20abc,x-tenant=ops",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod",
            "OTEL_SERVICE_NAME": "api-eu",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        }
    ).otel
    assert settings.exporters == ("otlp",)
    assert settings.endpoint == "http://collector:4318/v1/traces"
    assert settings.headers == {"authorization": "Bearer abc", "x-tenant": "ops"}
    assert settings.resource_attributes == {"deployment.environment": "prod"}
    assert settings.service_name == "api-eu"
    assert (settings.sampler, settings.sampler_arg, settings.timeout_s) == (
        "parentbased_traceidratio",
        0.25,
        2.5,
    )
    # the signal-specific endpoint is used as given
    traces = OtelSettings.from_env({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/custom"})
    assert traces.endpoint == "http://c/custom"
    assert OtelSettings.from_env({"OTEL_TRACES_EXPORTER": "console,otlp"}).exporters == (
        "console",
        "otlp",
    )


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("OTEL_TRACES_EXPORTER", "jaeger", "unsupported"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "http/protobuf"),
        ("OTEL_TRACES_SAMPLER", "sometimes", "OTEL_TRACES_SAMPLER"),
        ("OTEL_TRACES_SAMPLER_ARG", "2", "0..1"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "soon", "milliseconds"),
        ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"),
    ],
)
def test_bad_values_stop_the_service_with_a_clear_message(
    name: str, value: str, message: str
) -> None:
    environ = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", name: value}
    with pytest.raises(SettingsError, match=message):
        CommonSettings.from_env(environ)


async def test_spans_reach_an_otlp_http_endpoint() -> None:
    received: list[tuple[str, bytes, str]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(
            (request.headers["Content-Type"], await request.read(), request.headers["x-key"])
        )
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/v1/traces", collect)
    async with TestServer(app) as server:
        settings = OtelSettings.from_env(
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": str(server.make_url("/")),
                "OTEL_EXPORTER_OTLP_HEADERS": "x-key=k1",
                "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            }
        )
        provider = configure_tracing("stepwise-test", settings, install_global=False)
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("exported"):
            pass
        # the exporter posts from its own thread (blocking HTTP); flush it off the event loop
        assert await asyncio.to_thread(provider.force_flush, 10_000)
        await asyncio.to_thread(provider.shutdown)
    assert len(received) == 1
    content_type, body, key = received[0]
    assert content_type == "application/x-protobuf" and key == "k1"
    request = ExportTraceServiceRequest.FromString(body)
    resource = {a.key: a.value.string_value for a in request.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "stepwise-test"
    assert resource["deployment.environment"] == "test"
    assert [s.name for s in request.resource_spans[0].scope_spans[0].spans] == ["exported"]
