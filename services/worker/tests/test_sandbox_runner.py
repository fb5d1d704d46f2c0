"""The worker's sandbox runner compiles each sandbox entry string once and looks serialization
contexts up directly, and still runs workflows exactly as Temporal's own runner does. The first test guards the SDK internals it relies on: when
a temporalio upgrade changes them, it fails here rather than in production."""

from __future__ import annotations

import inspect

import asyncpg
from stepwise_worker import sandbox_runner
from stepwise_worker.worker import workflow_runner
from stepwise_worker.workflow.run_workflow import RunWorkflow
from temporalio import workflow
from temporalio.api.enums.v1 import CommandType
from temporalio.client import Client
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
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
    # the context lookups only forward to the workflow instance inside the sandbox
    for name in ("get_serialization_context", "get_external_store_context"):
        forward = f"__temporal_in_sandbox.{name}(__temporal_command_info)"
        assert forward in inspect.getsource(getattr(_Instance, name)), name
        assert f"self.instance.{name}(command_info)" in inspect.getsource(getattr(InSandbox, name))
    create = inspect.getsource(SandboxedWorkflowRunner.create_instance)
    assert "_Instance(det, self.runner_class, self.restrictions)" in create


async def test_the_direct_context_lookups_answer_as_the_sdk_does() -> None:
    created: list[WorkflowInstance] = []

    class Recording(sandbox_runner.CompiledSandboxRunner):
        def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
            created.append(super().create_instance(det))
            return created[-1]

    Recording(restrictions=workflow_runner().restrictions).prepare_workflow(
        workflow._Definition.must_from_class(RunWorkflow)
    )
    [instance] = created
    assert isinstance(instance, _Instance)
    commands = [
        None,
        CommandInfo(command_type=CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, command_seq=1),
        CommandInfo(
            command_type=CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION, command_seq=2
        ),
    ]
    for info in commands:
        assert instance.get_serialization_context(info) == _Instance.get_serialization_context(
            instance, info
        )
        assert instance.get_external_store_context(info) == _Instance.get_external_store_context(
            instance, info
        )


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
    # three runs of several activations each: the same few strings, reused
    assert info.hits > 2 * info.misses > 0, info
