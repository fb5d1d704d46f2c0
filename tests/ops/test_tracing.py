"""Tracing (stepwise_contract.platform's tracing modules): one trace from an HTTP request through a Temporal workflow
and its activity, and from a NATS publish to the consumer's work — on the real Temporal dev server
and nats-server fixtures, with an in-memory exporter."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import nats
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from stepwise_contract.names import MSG_ID_HEADER
from stepwise_contract.platform.http_tracing import tracing_middlewares
from stepwise_contract.platform.nats_tracing import (
    TracingJetStreamContext,
    traced_jetstream,
    traced_message_handler,
)
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_contract.platform.tracing import configure_tracing, temporal_interceptors
from temporalio import activity, workflow
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


@activity.defn(name="ops_trace_echo")
async def echo(text: str) -> str:
    return text.upper()


@workflow.defn(name="OpsTraceWorkflow")
class EchoWorkflow:
    @workflow.run
    async def run(self, text: str) -> str:
        return await workflow.execute_activity(
            echo, text, start_to_close_timeout=timedelta(seconds=10)
        )


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = configure_tracing("ops-test", None, exporter=exporter, install_global=False)
    assert provider is not None
    return provider, exporter


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


async def test_http_request_workflow_and_activity_share_one_trace(temporal_address: str) -> None:
    provider, exporter = _provider()
    client = await connect_temporal(
        temporal_address, "default", claims=None, interceptors=temporal_interceptors(provider)
    )
    queue = f"ops-trace-{uuid.uuid4()}"

    async def start(request: web.Request) -> web.Response:
        # an API-like handler: start the workflow (context must ride in the Temporal header)
        result = await client.execute_workflow(
            EchoWorkflow.run,
            request.match_info["text"],
            id=f"ops-trace-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=30),
        )
        return web.json_response({"result": result})

    app = web.Application(middlewares=tracing_middlewares(provider))
    app.router.add_post("/runs/{text}", start)
    # the worker gets the interceptor from the client it is built on
    async with (
        Worker(
            client,
            task_queue=queue,
            workflows=[EchoWorkflow],
            activities=[echo],
            workflow_runner=UnsandboxedWorkflowRunner(),
        ),
        TestServer(app) as server,
        ClientSession() as http,
        http.post(
            server.make_url("/runs/hello"),
            headers={"traceparent": f"00-{TRACE_ID}-{CALLER_SPAN}-01"},
        ) as resp,
    ):
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"result": "HELLO"}

    spans = _by_name(exporter.get_finished_spans())
    expected = {
        "POST /runs/{text}",
        "StartWorkflow:OpsTraceWorkflow",
        "RunWorkflow:OpsTraceWorkflow",
        "StartActivity:ops_trace_echo",
        "RunActivity:ops_trace_echo",
    }
    assert expected <= spans.keys(), sorted(spans)
    # one trace, continuing the caller's traceparent
    assert {f"{spans[name].context.trace_id:032x}" for name in expected} == {TRACE_ID}
    server_span = spans["POST /runs/{text}"]
    assert server_span.kind is SpanKind.SERVER
    assert server_span.parent is not None and f"{server_span.parent.span_id:016x}" == CALLER_SPAN
    assert server_span.attributes is not None
    assert server_span.attributes["http.route"] == "/runs/{text}"
    assert server_span.attributes["http.response.status_code"] == 200
    # the workflow start is a child of the server span, the activity run a descendant of it
    start_span = spans["StartWorkflow:OpsTraceWorkflow"]
    assert start_span.parent is not None
    assert start_span.parent.span_id == server_span.context.span_id


async def test_probes_are_not_traced_and_errors_are_marked() -> None:
    provider, exporter = _provider()

    async def boom(_request: web.Request) -> web.Response:
        return web.json_response({"error": "x"}, status=503)

    async def ok(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(middlewares=tracing_middlewares(provider))
    app.router.add_get("/boom", boom)
    app.router.add_get("/healthz", ok)
    async with TestServer(app) as server, ClientSession() as http:
        for path in ("/boom", "/healthz", "/missing"):
            async with http.get(server.make_url(path)):
                pass
    spans = _by_name(exporter.get_finished_spans())
    assert set(spans) == {"GET /boom", "GET unmatched"}
    assert not spans["GET /boom"].status.is_ok
    assert spans["GET unmatched"].attributes is not None
    assert spans["GET unmatched"].attributes["http.response.status_code"] == 404
    assert tracing_middlewares(None) == []


async def test_nats_publish_to_consumer_is_one_trace(nats_url: str) -> None:
    provider, exporter = _provider()
    tracer = provider.get_tracer("ops-test")
    nc = await nats.connect(nats_url)
    stream = f"OPS_TRACE_{uuid.uuid4().hex[:10]}"
    subject = f"ops.trace.{uuid.uuid4().hex[:10]}"
    try:
        js = traced_jetstream(nc, provider)
        assert isinstance(js, TracingJetStreamContext)
        await js.add_stream(name=stream, subjects=[subject])
        received: asyncio.Queue[Msg] = asyncio.Queue()
        sub = await js.subscribe(subject, cb=received.put, ordered_consumer=True)
        event_id = str(uuid.uuid4())
        with tracer.start_as_current_span("producer") as producer:
            await js.publish(subject, b"{}", headers={MSG_ID_HEADER: event_id})
        msg = await asyncio.wait_for(received.get(), 5)
        await sub.unsubscribe()

        assert msg.headers is not None and msg.headers[MSG_ID_HEADER] == event_id
        trace_id = f"{producer.get_span_context().trace_id:032x}"
        assert msg.headers["traceparent"].split("-")[1] == trace_id

        async def route(_msg: Msg) -> None:
            # what the router does inside (signal, start) is a child of the consumer span
            with tracer.start_as_current_span("route"):
                pass

        await traced_message_handler(route, provider)(msg)
        await js.delete_stream(stream)
    finally:
        await nc.close()

    spans = _by_name(exporter.get_finished_spans())
    publish, process, routed = (
        spans["ops.trace publish"],
        spans["ops.trace process"],
        spans["route"],
    )
    assert publish.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert {f"{s.context.trace_id:032x}" for s in (publish, process, routed)} == {trace_id}
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert routed.parent is not None and routed.parent.span_id == process.context.span_id
    assert process.attributes is not None
    assert process.attributes["messaging.message.id"] == event_id


async def test_tracing_off_changes_nothing(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    try:
        js = traced_jetstream(nc, None)
        assert type(js) is JetStreamContext
    finally:
        await nc.close()

    async def handler(_msg: Msg) -> None:
        return None

    assert traced_message_handler(handler, None) is handler
    assert temporal_interceptors(None) == []
    assert configure_tracing("x", None) is None
