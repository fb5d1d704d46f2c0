"""Child processes of the dev stack and the test harness: start, wait until ready, kill, restart.

The same class starts the infrastructure (Temporal dev server, nats-server, embedded Postgres) and
the four services, so `make run` and the end-to-end tests bring the system up the same way.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class StartAborted(Exception):
    """Startup was interrupted (Ctrl-C / SIGTERM) before every component was ready."""


def free_port(preferred: int | None = None, host: str = "127.0.0.1") -> int:
    """`preferred` when it is free, else a port the kernel picks."""
    candidates = [preferred, 0] if preferred else [0]
    for candidate in candidates:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, candidate or 0))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise RuntimeError("no free TCP port")


def tcp_ready(host: str, port: int) -> Callable[[], bool]:
    def check() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(0.5)
            return sock.connect_ex((host, port)) == 0

    return check


def http_ready(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    return check


def process_gone(pid: int) -> bool:
    """True when no process with `pid` runs (a zombie counts as gone: it runs no code)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # Field 3, after the parenthesised command name, is the state; Z = zombie, X = dead.
    return stat.rpartition(")")[2].split()[0] in {"Z", "X"}


def group_gone(pgid: int) -> bool:
    """True when no process of process group `pgid` runs (zombies aside)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    proc_fs = Path("/proc")
    if not proc_fs.is_dir():
        return False
    for entry in proc_fs.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # fields: state, ppid, pgrp, ...
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            return False
    return True


@dataclass
class ManagedProcess:
    """One child process with its command, environment, log file and readiness probe.

    Each child runs in its own session and process group, so Ctrl-C in the terminal reaches only
    the launcher, which stops children in order, and `kill` takes the child's own children with it.
    """

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    ready: Callable[[], bool] | None = None
    cwd: Path | None = None
    # Postgres exits on SIGTERM only once every client has left; it is stopped with SIGINT.
    stop_signal: signal.Signals = signal.SIGTERM
    # Run as this uid/gid (Postgres refuses to run as root).
    user: int | None = None
    group: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    _stop_sent: bool = field(default=False, repr=False)

    def start(self) -> ManagedProcess:
        self._stop_sent = False
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                list(self.argv),
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.cwd,
                start_new_session=True,
                user=self.user,
                group=self.group,
                extra_groups=[] if self.user is not None else None,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout_s: float = 60.0, abort: threading.Event | None = None) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if abort is not None and abort.is_set():
                raise StartAborted(f"interrupted while waiting for {self.name}")
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited early (status {self.returncode}); "
                    f"see {self.log_path}:\n{self.tail()}"
                )
            if self.ready is None or self.ready():
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout_s}s; see {self.log_path}")

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal_stop(self) -> None:
        """Ask the process to stop (its `stop_signal`) without waiting."""
        # Once only: a second SIGTERM/SIGINT makes some servers skip their clean shutdown.
        if self.proc is not None and self.proc.poll() is None and not self._stop_sent:
            self._stop_sent = True
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(self.stop_signal)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """`stop_signal`, then SIGKILL after `timeout_s`; returns the exit status."""
        if self.proc is None:
            return None
        self.signal_stop()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap_group()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole process group (kill -9: no cleanup runs)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def _reap_group(self) -> None:
        """Kill what the child left behind in its process group (e.g. its own children)."""
        if self.proc is None:
            return
        if not group_gone(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)

    def restart(self, timeout_s: float = 60.0) -> None:
        self.stop()
        self.start()
        self.wait_ready(timeout_s)


def stop_all(processes: Iterable[ManagedProcess], timeout_s: float = 30.0) -> None:
    """Signal every process at once, then wait for each (SIGKILL past the shared deadline)."""
    procs = [p for p in processes if p.proc is not None]
    for p in procs:
        p.signal_stop()
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.stop(max(0.1, deadline - time.monotonic()))
