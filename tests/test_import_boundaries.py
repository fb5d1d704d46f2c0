"""The libraries' direction: services and the contract never import the CLI or the devkit.

`stepwise_cli` (the operator command) and `stepwise_devkit` (dev stack, test harness, bench) sit
on top of the services; a service image installs neither. The CLI reaches the devkit only from
`stepwise dev`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLING = ("stepwise_cli", "stepwise_devkit")
SERVICE_PACKAGES = ("stepwise_api", "stepwise_worker", "stepwise_router", "stepwise_sweeper")
RUNTIME_SOURCES = [ROOT / "libs/contract/src", *sorted((ROOT / "services").glob("*/src"))]


def imported_modules(source: str) -> set[str]:
    """Every module an `import` or `from … import` names, at any depth (lazy imports too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def importers(roots: list[Path], packages: tuple[str, ...]) -> list[str]:
    """'path: module' for each import of one of `packages` in the Python files under `roots`."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for module in imported_modules(path.read_text(encoding="utf-8")):
                if module.split(".")[0] in packages:
                    found.append(f"{path.relative_to(ROOT)}: {module}")
    return found


def test_the_scanner_sees_top_level_and_lazy_imports() -> None:
    source = (
        "import stepwise_cli.admin_command\n"
        "def f():\n"
        "    from stepwise_devkit.stack import Stack\n"
        "from . import sibling\n"
    )
    assert imported_modules(source) == {"stepwise_cli.admin_command", "stepwise_devkit.stack"}


def test_services_and_contract_import_neither_cli_nor_devkit() -> None:
    assert len(RUNTIME_SOURCES) == 5, RUNTIME_SOURCES
    assert importers(RUNTIME_SOURCES, TOOLING) == []


def test_services_and_contract_do_not_depend_on_cli_or_devkit() -> None:
    for source in RUNTIME_SOURCES:
        project = tomllib.loads((source.parent / "pyproject.toml").read_text(encoding="utf-8"))
        dependencies = project["project"]["dependencies"]
        named = [d for d in dependencies if d.startswith(("stepwise-cli", "stepwise-devkit"))]
        assert named == [], f"{source.parent.name}: {named}"


def test_cli_reaches_the_devkit_only_from_the_dev_command() -> None:
    found = importers([ROOT / "libs/cli/src"], ("stepwise_devkit",))
    assert sorted(found) == [
        "libs/cli/src/stepwise_cli/dev_command.py: stepwise_devkit.dev_session",
        "libs/cli/src/stepwise_cli/dev_command.py: stepwise_devkit.replicas",
    ]


def test_a_service_process_loads_neither() -> None:
    """The real import graph, entry points included: what a service's `python -m` loads."""
    code = (
        "import sys\n"
        + "".join(f"import {package}.__main__\n" for package in SERVICE_PACKAGES)
        + f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TOOLING!r}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert out.strip() == "[]"
