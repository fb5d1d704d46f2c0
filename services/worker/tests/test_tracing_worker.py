"""The production worker under the tracing interceptor (stepwise_contract.platform.tracing): sandboxed
interpreter, local projection activities and the action activity all join the caller's trace."""

from __future__ import annotations

import asyncpg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_contract.platform.tracing import configure_tracing, temporal_interceptors

from .runs import outcome, run_definition, running_worker


async def test_real_run_is_traced_in_the_sandboxed_worker(
    temporal_address: str, pool: asyncpg.Pool, tenant_id: str
) -> None:
    """The production worker (sandboxed interpreter, local projection activities, the action
    activity) under the tracing interceptor: a run started inside a server-like span is one trace
    down to the action's activity."""
    exporter = InMemorySpanExporter()
    provider = configure_tracing("worker-test", None, exporter=exporter, install_global=False)
    assert provider is not None
    client = await connect_temporal(
        temporal_address, "default", claims=None, interceptors=temporal_interceptors(provider)
    )
    definition = {
        "name": "traced",
        "steps": [
            {
                "id": "echo",
                "type": "action.call",
                "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": 1}},
            }
        ],
    }
    tracer = provider.get_tracer("worker-test")
    async with running_worker(client, pool):
        with tracer.start_as_current_span("POST /api/workflow-runs", kind=SpanKind.SERVER) as root:
            _run_id, handle = await run_definition(pool, client, tenant_id, definition)
        assert await outcome(handle) == "completed"
    trace_id = root.get_span_context().trace_id
    spans = exporter.get_finished_spans()
    names = {s.name for s in spans if s.context.trace_id == trace_id}
    assert "StartWorkflow:WorkflowRuntimeV2" in names, sorted(names)
    assert "RunWorkflow:WorkflowRuntimeV2" in names, sorted(names)
    assert "RunActivity:stepwise.execute_action" in names, sorted(names)
    # nothing of this run escaped into another trace
    assert {s.context.trace_id for s in spans} == {trace_id}
