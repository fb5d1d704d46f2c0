"""Shared facts for the deployment tests, read from the repository itself (no Docker, no network).

The deployed components, their packages, entry modules, ops ports and the environment variables
each one reads are DISCOVERED from the code — every literal `env_*(environ, "NAME", ...)` /
`environ.get("NAME")` in the service and the contract, plus every name `Settings.from_env` asks
for when run — so a variable added to a service fails these tests until deploy/ carries it.
"""

from __future__ import annotations

import ast
import importlib
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONTRACT_SRC = ROOT / "libs" / "contract" / "src"

# Deployment names of the service directories (compose service, chart component, Dockerfile
# stem) and the chart values key of each.
DEPLOYED = {
    "api": "api",
    "worker": "worker",
    "event-router": "eventRouter",
    "sweeper": "sweeper",
}

# No variable may select an engine or a task queue (SPEC §1, §12).
FORBIDDEN = re.compile(r"ENGINE|QUEUE", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Component:
    name: str  # compose service, chart component, deploy/docker/<name>.Dockerfile
    directory: Path
    package: str
    module: str
    values_key: str
    port_env: str
    port: int
    env: frozenset[str]  # every variable the process reads (its own code + the contract)
    shutdown_budget_s: float  # the longest drain it allows itself after SIGTERM (default settings)


def _string_arg(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _is_environ(node: ast.expr) -> bool:
    return (isinstance(node, ast.Name) and node.id == "environ") or (
        isinstance(node, ast.Attribute) and node.attr == "environ"
    )


def _literal_reads(path: Path) -> set[str]:
    """Names read with a literal in one file: env_*(environ, "NAME", ...), environ.get("NAME"),
    environ["NAME"], getenv("NAME") — including reads on branches a default start never takes."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        arg: ast.expr | None = None
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name):
                fname = func.id
            elif isinstance(func, ast.Attribute):
                fname = func.attr
            else:
                continue
            if fname.startswith("env_") and len(node.args) >= 2:
                arg = node.args[1]
            elif fname == "getenv" and node.args:
                arg = node.args[0]
            elif fname == "get" and isinstance(func, ast.Attribute) and _is_environ(func.value):
                arg = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            arg = node.slice
        name = _string_arg(arg) if arg is not None else None
        if name is not None:
            names.add(name)
    return names


def reads_under(src: Path) -> frozenset[str]:
    found: set[str] = set()
    for path in sorted(src.rglob("*.py")):
        found |= _literal_reads(path)
    return frozenset(found)


class RecordingEnviron(Mapping[str, str]):
    """An empty environment that remembers every name asked for, so names built at run time
    (f-strings over a Struct's fields) are discovered too."""

    def __init__(self) -> None:
        self.asked: set[str] = set()

    def __getitem__(self, name: str) -> str:
        self.asked.add(name)
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if isinstance(name, str):
            self.asked.add(name)
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def shutdown_budget_s(module: str) -> float:
    """Every numeric default setting whose name mentions shutdown: the service's own drain time."""
    settings = importlib.import_module(f"{module}.settings").Settings.from_env({})
    budgets = [
        float(value)
        for name, value in msgspec.structs.asdict(settings).items()
        if "shutdown" in name and isinstance(value, int | float)
    ]
    return max(budgets, default=0.0)


def settings_reads(module: str) -> frozenset[str]:
    """What the service's entry point reads: `Settings.from_env` run on a recording environ."""
    settings = importlib.import_module(f"{module}.settings").Settings
    environ = RecordingEnviron()
    settings.from_env(environ)
    return frozenset(environ.asked)


_PORT = re.compile(r"env_port\(\s*\w+\s*,\s*\"([A-Z0-9_]+)\"\s*,\s*(\d+)\s*\)")


def _component(directory: Path) -> Component:
    pyproject = tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))
    module = pyproject["tool"]["uv"]["build-backend"]["module-name"]
    settings = directory / "src" / module / "settings.py"
    ports = _PORT.findall(settings.read_text(encoding="utf-8"))
    assert len(ports) == 1, f"{settings}: expected exactly one env_port(...) (the ops/HTTP port)"
    port_env, port = ports[0]
    return Component(
        name=directory.name,
        directory=directory,
        package=pyproject["project"]["name"],
        module=module,
        values_key=DEPLOYED[directory.name],
        port_env=port_env,
        port=int(port),
        env=reads_under(directory / "src") | reads_under(CONTRACT_SRC) | settings_reads(module),
        shutdown_budget_s=shutdown_budget_s(module),
    )


@pytest.fixture(scope="session")
def components() -> list[Component]:
    service_dirs = sorted(p.parent for p in (ROOT / "services").glob("*/pyproject.toml"))
    undeployed = [d.name for d in service_dirs if d.name not in DEPLOYED]
    assert undeployed == [], f"services without a deployment in deploy/: {undeployed}"
    return [_component(d) for d in service_dirs]


@pytest.fixture(scope="session")
def migrate_env() -> frozenset[str]:
    """What the migrate job (`python -m stepwise_contract.platform.migrate`) reads."""
    return frozenset(_literal_reads(CONTRACT_SRC / "stepwise_contract" / "platform" / "migrate.py"))


_DOC_ROW = re.compile(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|(.*)\|\s*$", re.M)


@dataclass(frozen=True, kw_only=True)
class Documented:
    default: str
    read_by: str
    notes: str


@pytest.fixture(scope="session")
def documented() -> dict[str, Documented]:
    """Variable → its row in the Configuration tables of deploy/README.md
    (| variable | default | read by | notes |)."""
    text = (DEPLOY / "README.md").read_text(encoding="utf-8")
    section = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    rows: dict[str, Documented] = {}
    for name, rest in _DOC_ROW.findall(section):
        default, read_by, notes = (cell.strip() for cell in rest.split("|"))
        assert name not in rows, f"{name} documented twice"
        rows[name] = Documented(default=default, read_by=read_by, notes=notes)
    assert rows, "deploy/README.md has no Configuration table"
    return rows


@pytest.fixture(scope="session")
def documented_service_vars(documented: dict[str, Documented]) -> frozenset[str]:
    """Variables documented as read by a Stepwise service (not compose-only knobs)."""
    return frozenset(n for n, row in documented.items() if row.read_by != "compose only")


@pytest.fixture(scope="session")
def test_only_vars(documented: dict[str, Documented]) -> frozenset[str]:
    """Fault hooks of the test suites: documented, and never set by a deployment."""
    return frozenset(n for n, row in documented.items() if "test only" in row.read_by)


@pytest.fixture(scope="session")
def secret_vars(documented: dict[str, Documented]) -> frozenset[str]:
    """Documented as secret: they reach only the containers that read them."""
    return frozenset(n for n, row in documented.items() if row.notes.startswith("secret"))
