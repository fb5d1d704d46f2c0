"""Temporal's workflow sandbox, without compiling the same glue code again on every call.

The sandbox enters workflow code through `_Instance._run_code`, which `exec`s a short source string:
once per activation, and once per payload sequence the SDK encodes or decodes (it asks the
workflow which serialization context a payload belongs to), tens of times per run. `exec` of a
string compiles it first, every time: about 25 µs for those two-line strings against under 1 µs to
execute them, and 16 % of the worker's Python CPU while it drained one-step runs (py-spy `--gil`).

The strings are constants of the SDK (plus one per workflow module), so each is compiled once here
and the code object is executed in the same globals, under the same import restrictions — the same
code runs, only the compiling is shared. `tests/test_sandbox_runner.py` fails loudly when an SDK
upgrade changes the private method this relies on.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any, cast

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox._runner import _Instance


@functools.lru_cache(maxsize=256)
def compiled(source: str) -> CodeType:
    """`source` compiled as `exec` compiles it (same filename, so tracebacks read the same)."""
    return compile(source, "<string>", "exec")


class _CompiledInstance(_Instance):
    def _run_code(self, code: str, **extra_globals: Any) -> None:
        # `exec`, which the SDK's method ends in, takes a code object as well as a string
        super()._run_code(cast(str, compiled(code)), **extra_globals)


class CompiledSandboxRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances compile each sandbox entry string once."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _CompiledInstance(det, self.runner_class, self.restrictions)
