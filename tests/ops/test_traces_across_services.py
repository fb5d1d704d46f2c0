"""One trace across the real service processes: a stack started with `OTEL_EXPORTER_OTLP_ENDPOINT`
pointing at an OTLP/HTTP collector inside this test. An HTTP launch carrying a `traceparent` is
followed into the worker's workflow and action activity; an event published over the API is
followed through NATS into the router and its signal to the waiting run."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from stepwise_devkit.scratch_database import scratch_database
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import StackApi, eventually

pytestmark = pytest.mark.e2e

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    trace_id: str


class Collector:
    """An OTLP/HTTP traces endpoint keeping every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []

    async def receive(self, request: web.Request) -> web.Response:
        export = ExportTraceServiceRequest.FromString(await request.read())
        for resource_spans in export.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans += [
                    Span(attributes.get("service.name", "?"), s.name, s.trace_id.hex())
                    for s in scope.spans
                ]
        return web.Response(status=200)

    def trace(self, trace_id: str) -> set[tuple[str, str]]:
        return {(s.service, s.name) for s in self.spans if s.trace_id == trace_id}


@pytest.fixture(scope="module")
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    sink = Collector()
    app = web.Application()
    app.router.add_post("/v1/traces", sink.receive)
    async with TestServer(app, host="127.0.0.1") as server:
        yield sink, str(server.make_url("")).rstrip("/")


@pytest.fixture(scope="module")
def traces_database() -> Iterator[str]:
    with scratch_database(ADMIN_URL, "stepwise_traces") as database_url:
        yield database_url


@pytest.fixture(scope="module")
async def traced_stack(
    tmp_path_factory: pytest.TempPathFactory,
    collector: tuple[Collector, str],
    traces_database: str,
) -> AsyncIterator[Stack]:
    # Started and stopped off the event loop: the collector answers on that loop, and services
    # that stop flush their last spans to it (a blocked loop held each stop until its timeout).
    system = Stack(
        tmp_path_factory.mktemp("traces"),
        database_url=traces_database,
        extra_env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector[1],
            # the SDK's batch processor exports every 200 ms instead of 5 s
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            # a second stack next to the e2e one: keep its share of Postgres connections small
            "STEPWISE_WORKER_DB_POOL_SIZE": "4",
            "STEPWISE_ROUTER_CONCURRENCY": "2",
        },
        tenant_name="traces",
    )
    await asyncio.to_thread(system.start)
    try:
        yield system
    finally:
        await asyncio.to_thread(system.stop)


def _traceparent() -> tuple[str, str]:
    trace_id = uuid.uuid4().hex
    return trace_id, f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"


async def test_launch_and_event_are_each_one_trace_across_processes(
    traced_stack: Stack, collector: tuple[Collector, str]
) -> None:
    sink, _ = collector
    event_name = f"TRACE_PAID_{uuid.uuid4().hex[:6].upper()}"
    async with aiohttp.ClientSession(
        base_url=traced_stack.api_url,
        headers={"Authorization": f"Bearer {traced_stack.api_key}"},
        timeout=aiohttp.ClientTimeout(total=30),
    ) as session:
        api = StackApi(session)
        workflow_id = await api.publish_definition(
            {
                "name": "traced",
                "steps": [
                    {
                        "id": "echo",
                        "type": "action.call",
                        "config": {"actionId": "core.echo", "version": 1, "inputMapping": {}},
                    },
                    {
                        "id": "paid",
                        "type": "event.wait",
                        "config": {
                            "eventName": event_name,
                            "correlationKey": {"$expr": "payload.order"},
                        },
                    },
                ],
            }
        )
        launch_trace, header = _traceparent()
        launched = await api.call(
            "POST",
            "/api/workflow-runs",
            {"workflowId": workflow_id, "payload": {"order": "o-1"}},
            headers={"traceparent": header},
        )
        run_id = launched["runId"]
        await api.wait_waiting(run_id)
        event_trace, header = _traceparent()
        await api.call(
            "POST",
            "/api/workflow/events",
            {"eventName": event_name, "correlationKey": "o-1"},
            headers={"traceparent": header},
        )
        run = await api.wait_run(run_id)
        assert run["status"] == "SUCCEEDED", run

    launch_expected = {
        ("stepwise-api", "POST /api/workflow-runs"),
        ("stepwise-api", "StartWorkflow:WorkflowRuntimeV2"),
        ("stepwise-worker", "RunWorkflow:WorkflowRuntimeV2"),
        ("stepwise-worker", "RunActivity:stepwise.execute_action"),
        # temporalio's interceptor records workflow-side spans in the run's own trace, the
        # signal's handling included
        ("stepwise-worker", "HandleSignal:workflowRuntimeV2Event"),
    }
    event_expected = {
        ("stepwise-api", "POST /api/workflow/events"),
        ("stepwise-api", "workflow.events publish"),
        ("stepwise-router", "workflow.events process"),
        ("stepwise-router", "SignalWorkflow:workflowRuntimeV2Event"),
    }

    async def complete() -> bool:
        return launch_expected <= sink.trace(launch_trace) and event_expected <= sink.trace(
            event_trace
        )

    try:
        await eventually(complete, "the spans of both traces at the collector", timeout_s=15)
    except AssertionError:
        raise AssertionError(
            f"launch trace: {sorted(sink.trace(launch_trace))}\n"
            f"event trace: {sorted(sink.trace(event_trace))}"
        ) from None
