"""The README's two commands on a machine without uv: the Makefile installs uv itself (from PyPI,
into `.stepwise/uv`), or stops with the one command to run; `make run` from a fresh copy of the
repository with no uv on PATH reaches ready services."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from stepwise_cli.stepwise_home import parse_dev_env
from stepwise_devkit.pg_placement import REACHABLE_ROOT

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_uv_path(tmp_path: Path) -> str:
    """A PATH with `python3` (this interpreter's base Python, 3.11) and the system tools, no uv."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    base = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    (bin_dir / "python3").symlink_to(base)
    path = f"{bin_dir}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"
    found = subprocess.run(["sh", "-c", "command -v uv"], env={"PATH": path}, capture_output=True)
    if found.returncode == 0:
        pytest.skip(f"uv is installed system-wide here ({found.stdout.decode().strip()})")
    return path


def _env(path: str, **extra: str) -> dict[str, str]:
    # `uv run` tells its children where uv is (UV); a machine without uv has none of these
    drop = {"UV", "DATABASE_URL", "NATS_URL", "MAKEFLAGS", "MAKELEVEL"}
    keep = {
        k: v
        for k, v in os.environ.items()
        if k not in drop and not k.startswith(("STEPWISE_", "UV_", "VIRTUAL_ENV"))
    }
    return {**keep, "PATH": path, **extra}


def test_make_installs_uv_once_when_it_is_missing(tmp_path: Path, no_uv_path: str) -> None:
    work = tmp_path / "repo"
    work.mkdir()
    shutil.copy(ROOT / "Makefile", work / "Makefile")
    first = subprocess.run(
        ["make", "uv"], cwd=work, env=_env(no_uv_path), capture_output=True, text=True, timeout=600
    )
    assert first.returncode == 0, first.stderr
    assert "uv is not on PATH: installing" in first.stdout
    uv = work / ".stepwise" / "uv" / "bin" / "uv"
    version = subprocess.run([uv, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("uv 0.")
    again = subprocess.run(
        ["make", "uv"], cwd=work, env=_env(no_uv_path), capture_output=True, text=True
    )
    assert again.returncode == 0 and again.stdout == "", again.stdout
    # the targets use it, and `make run` installs no test tooling
    dry = subprocess.run(
        ["make", "-n", "run", "test"],
        cwd=work,
        env=_env(no_uv_path),
        capture_output=True,
        text=True,
    )
    assert ".stepwise/uv/bin/uv run --locked --no-dev stepwise dev" in dry.stdout
    assert ".stepwise/uv/bin/uv sync --locked" in dry.stdout


def test_make_stops_with_the_command_to_run_when_uv_cannot_be_installed(
    tmp_path: Path, no_uv_path: str
) -> None:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    proc = subprocess.run(
        ["make", "run", "PYTHON=/nonexistent/python3"],
        cwd=tmp_path,
        env=_env(no_uv_path),
        capture_output=True,
        text=True,
    )
    assert proc.returncode != 0
    assert "could not install uv" in proc.stderr
    assert "python3 -m pip install --user uv" in proc.stderr
    assert not (tmp_path / ".stepwise" / "uv").exists()


def _fresh_copy(target: Path) -> None:
    """The repository's files as a clone would have them (tracked and new, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for raw in filter(None, listed):
        source = ROOT / raw.decode()
        if source.is_file():
            dest = target / raw.decode()
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)


@pytest.mark.e2e
@pytest.mark.slow
def test_make_run_from_a_fresh_copy_without_uv(tmp_path: Path, no_uv_path: str) -> None:
    """The README's way, nothing preset: no uv, no DATABASE_URL (the embedded Postgres), and —
    pytest's temporary directories being private — as root a clone in a mode-700 directory."""
    clone = tmp_path / "clone"
    _fresh_copy(clone)
    started = time.monotonic()
    out = (tmp_path / "make-run.out").open("wb")
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=_env(no_uv_path),
        stdout=out,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    dev_env = clone / ".stepwise" / "dev.env"
    try:
        deadline = time.monotonic() + 600
        while not dev_env.exists():
            assert proc.poll() is None, (tmp_path / "make-run.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "make-run.out").read_text()
            time.sleep(0.5)
        to_urls_s = time.monotonic() - started
        values = parse_dev_env(dev_env.read_text())
        text = (tmp_path / "make-run.out").read_text()
        assert f"Run Studio   {values['STEPWISE_API_URL']}/studio/" in text
        assert values["STEPWISE_SECRET_KEY"]
        print(f"make run without uv, fresh copy, warm uv cache: URLs after {to_urls_s:.0f} s")
    finally:
        if proc.poll() is None:
            # Ctrl-C's effect on the launcher without make's own reaction to it: SIGTERM to make's
            # child (uv, which passes it on to `stepwise dev`)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
            for child in children:
                os.kill(int(child), signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        out.close()
    assert proc.returncode == 0, (tmp_path / "make-run.out").read_text()
    pgdata = clone / ".stepwise" / "pgdata"
    if os.geteuid() == 0:
        assert pgdata.is_symlink() and pgdata.resolve().parent == REACHABLE_ROOT
        assert any(REACHABLE_ROOT.glob("pginstall-*/*/pginstall/bin/postgres"))
        shutil.rmtree(pgdata.resolve())
    # the dev group (pytest, ruff, playwright…) was not installed by make run
    site = next((clone / ".venv" / "lib").glob("python3*/site-packages"))
    assert any(site.glob("temporalio*")), "the runtime dependencies are installed"
    assert not any(site.glob("pytest*")) and not any(site.glob("ruff*"))
