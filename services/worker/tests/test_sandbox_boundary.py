"""The worker's sandbox boundary, read from the source: workflow code imports no activity code and no
I/O library, and the worker's modules import each other without cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import stepwise_worker

PACKAGE = Path(stepwise_worker.__file__).parent
# what workflow code must not import: the I/O side of the worker and the libraries it talks with
IO_SIDE = (
    "stepwise_worker.activities",
    "stepwise_worker.actions",
    "stepwise_worker.metrics",
    "asyncpg",
    "aiohttp",
    "nats",
    "prometheus_client",
    "structlog",
)


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code (TYPE_CHECKING blocks included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


GRAPH = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}


def test_workflow_code_imports_nothing_of_the_io_side() -> None:
    workflow = {m: deps for m, deps in GRAPH.items() if m.startswith("stepwise_worker.workflow")}
    assert len(workflow) > 10
    crossing = {
        module: sorted(d for d in deps if d.startswith(IO_SIDE))
        for module, deps in workflow.items()
        if any(d.startswith(IO_SIDE) for d in deps)
    }
    assert crossing == {}


def test_no_import_cycle_between_worker_modules() -> None:
    edges = {m: {d for d in deps if d in GRAPH and d != m} for m, deps in GRAPH.items()}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        for dep in sorted(edges[module]):
            # a package's __init__ importing its own modules is not a cycle through them
            assert dep not in path or module.startswith(dep + "."), " -> ".join([*path, dep])
            if dep not in done and dep not in path:
                visit(dep, [*path, dep])
        done.add(module)

    for module in sorted(edges):
        visit(module, [module])


def test_step_handlers_see_the_interpreter_only_through_step_context() -> None:
    steps = [m for m in GRAPH if m.startswith("stepwise_worker.workflow.steps")]
    assert steps
    for module in steps:
        assert "stepwise_worker.workflow.interpreter" not in GRAPH[module], module
        assert "typing.TYPE_CHECKING" not in GRAPH[module], module
