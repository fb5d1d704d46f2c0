"""Temporal's workflow sandbox, minus the glue that cost more than the work it wrapped.

The sandbox enters the workflow through `_Instance._run_code`, which `exec`s a short source string
under the sandbox's import hooks and builtins (`Importer.applied`): once per activation, and once
per payload sequence the SDK encodes or decodes, to ask the workflow which serialization context
the payload belongs to — tens of times per run. Profiled with py-spy (`--gil`) while the worker
drained one-step runs, those context lookups were 16 % of its Python CPU, most of it compiling
the same string again (`exec` of a string compiles it every time: ~25 µs, against under 1 µs to
run it).

- Every entry string is compiled once and the code object executed, in the same globals and under
  the same restrictions: the same code runs.
- The two context lookups call the workflow instance directly: they read its pending-command
  tables and build Temporal's own context dataclasses, with no import and no workflow code, so
  the import hooks have nothing to guard there.

`tests/test_sandbox_runner.py` fails loudly when an SDK upgrade changes the private methods this
relies on, and checks that the lookups answer what the SDK's own path answers.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any, cast

from temporalio.converter import SerializationContext
from temporalio.converter._extstore import StorageDriverStoreContext
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker._command_aware_visitor import CommandInfo
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
from temporalio.worker.workflow_sandbox._runner import _Instance


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> CodeType:
    """`source` compiled as `exec` compiles it (same filename, so tracebacks read the same)."""
    return compile(source, "<string>", "exec")


class _CompiledInstance(_Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # `exec`, which the SDK's method ends in, takes a code object as well as a string
        super()._run_code(cast(str, compiled(code)), **extra_globals)

    def get_serialization_context(
        self, command_info: CommandInfo | None
    ) -> SerializationContext | None:
        return self._in_sandbox().get_serialization_context(command_info)

    def get_external_store_context(
        self, command_info: CommandInfo | None
    ) -> StorageDriverStoreContext:
        return self._in_sandbox().get_external_store_context(command_info)

    def _in_sandbox(self) -> InSandbox:
        # Both lookups read the workflow's pending-command tables and build Temporal's own
        # context dataclasses: no import, no workflow code, nothing the sandbox's import hooks and
        # builtins swap (`Importer.applied`) would change. Entering them per payload cost more
        # than the lookup itself.
        return cast(InSandbox, self.globals_and_locals["__temporal_in_sandbox"])


class CompiledSandboxRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances compile each sandbox entry string once and answer
    serialization-context lookups without entering the sandbox."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _CompiledInstance(det, self.runner_class, self.restrictions)
