"""The worker's sandbox runner compiles each sandbox entry string once, and still runs workflows
exactly as Temporal's own runner does. The first test guards the SDK internals it relies on: when
a temporalio upgrade changes them, it fails here rather than in production."""

from __future__ import annotations

import inspect

import asyncpg
from stepwise_worker import sandbox_runner
from stepwise_worker.worker import workflow_runner
from temporalio.client import Client
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance

from .runs import outcome, run_definition, run_row, running_worker


def test_the_sdk_still_enters_the_sandbox_through_run_code() -> None:
    params = list(inspect.signature(_Instance._run_code).parameters)
    assert params == ["self", "code", "extra_globals"]
    source = inspect.getsource(_Instance._run_code)
    assert "exec(code, self.globals_and_locals, self.globals_and_locals)" in source
    # every entry into workflow code goes through it (activation, contexts, creation)
    for method in (
        _Instance.activate,
        _Instance.get_serialization_context,
        _Instance._create_instance,
    ):
        assert "self._run_code(" in inspect.getsource(method), method
    create = inspect.getsource(SandboxedWorkflowRunner.create_instance)
    assert "_Instance(det, self.runner_class, self.restrictions)" in create


def test_compiled_is_shared_and_equivalent() -> None:
    source = "x = y + 1\n"
    first = sandbox_runner.compiled(source)
    assert sandbox_runner.compiled(source) is first
    scope = {"y": 41}
    exec(first, scope, scope)
    assert scope["x"] == 42 and first.co_filename == "<string>"


async def test_runs_execute_and_entries_compile_once(
    temporal_client: Client, pool: asyncpg.Pool, tenant_id: str
) -> None:
    assert isinstance(workflow_runner(), sandbox_runner.CompiledSandboxRunner)
    definition = {
        "name": "sandbox-runner",
        "steps": [
            {"id": "a", "type": "transform.assign",
             "config": {"assign": {"vars.x": {"$expr": "payload.n * 2"}}}},
            {"id": "b", "type": "state.set", "config": {"state": "done"}},
        ],
    }  # fmt: skip
    async with running_worker(temporal_client, pool):
        sandbox_runner.compiled.cache_clear()
        for n in range(3):
            run_id, handle = await run_definition(
                pool, temporal_client, tenant_id, definition, {"n": n}
            )
            assert await outcome(handle) == "completed"
            row = await run_row(pool, run_id)
            assert row["status"] == "SUCCEEDED", row["error_json"]
    info = sandbox_runner.compiled.cache_info()
    # three runs, each several activations and payload contexts: the same few strings, reused
    assert info.hits > 10 * info.misses > 0, info
