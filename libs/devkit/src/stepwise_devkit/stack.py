"""The whole system as child processes: what `stepwise dev` runs and what the e2e tests drive.

A `Stack` starts its own Temporal dev server and, unless given URLs, its own nats-server
(JetStream store under `home/nats`) and embedded Postgres (`home/pgdata`); it migrates the
database, makes sure a tenant with an admin API key exists, then starts the four services as
`python -m <package>` processes and waits for each `/readyz`. Every component is a
`ManagedProcess`, so a test can `kill` (SIGKILL) or `restart` any of them by name.

Scale-out: `replicas={"api": 2, "worker": 3}` runs several processes of a service on free ports
(the first keeps the service's name, the others are `api-2`, `worker-3`…), and `nats_nodes=3`
runs a three-node JetStream cluster (`nats-1`…`nats-3`) whose streams the router creates with
three replicas; every service gets all the nodes' URLs.

The methods block (they wait on processes); async tests call the slow ones through
`asyncio.to_thread`. `home/stack.json` describes the running stack (URLs, pids, log files).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypeVar

import asyncpg
from stepwise_cli.admin_operations import AdminError, create_key, create_tenant
from stepwise_cli.stepwise_home import STATE_FILE
from stepwise_contract.api_keys import generate_api_key, hash_api_key
from stepwise_contract.enums import Role
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.migrate import migrate

from stepwise_devkit.child_process import (
    ManagedProcess,
    StartAborted,
    free_port,
    http_ready,
    process_gone,
    stop_all,
)
from stepwise_devkit.infra_servers import (
    embedded_postgres,
    nats_cluster,
    nats_server,
    temporal_dev_server,
    temporal_dev_server_headless,
)

T = TypeVar("T")

# (component, detail, seconds it took)
Progress = Callable[[str, str, float], None]

EMBEDDED_DATABASE: Final = "stepwise"


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    module: str
    port_env: str
    default_port: int


SERVICES: Final = (
    ServiceSpec(name="api", module="stepwise_api", port_env="STEPWISE_API_PORT", default_port=8080),
    ServiceSpec(
        name="worker", module="stepwise_worker", port_env="STEPWISE_WORKER_PORT", default_port=8081
    ),
    ServiceSpec(
        name="event-router",
        module="stepwise_router",
        port_env="STEPWISE_ROUTER_PORT",
        default_port=8082,
    ),
    ServiceSpec(
        name="sweeper",
        module="stepwise_sweeper",
        port_env="STEPWISE_SWEEPER_PORT",
        default_port=8083,
    ),
)
_SPECS: Final = {spec.name: spec for spec in SERVICES}
# starts of a server that can be rebuilt on new ports (the Temporal dev server) when a port picked
# free was taken before it bound it
_PORT_RACE_ATTEMPTS: Final = 3
_PORT_TAKEN: Final = "address already in use"
# builds a server's process again on new ports, with its line for the start report
_Rebuild = Callable[[], tuple[ManagedProcess, str]]
# short names a caller may use for a component
ALIASES: Final = {"router": "event-router", "pg": "postgres"}
# more replicas of one service than this on one machine is a typo, not a test
MAX_REPLICAS: Final = 16


def replica_names(service: str, count: int) -> list[str]:
    """The component names of a service's replicas: `api`, `api-2`, `api-3`…"""
    return [service] + [f"{service}-{i}" for i in range(2, count + 1)]


class StackError(RuntimeError):
    """The stack cannot do what was asked (unknown component, external infrastructure…)."""


async def ensure_admin_key(
    database_url: str, tenant_id: str, api_key: str, tenant_name: str
) -> str:
    """Make `api_key` an admin key of a tenant; returns that tenant's id.

    A key that already exists keeps its tenant (so a bootstrap key of an existing tenant works);
    else the key is added to tenant `tenant_id`, which is created when missing.
    """
    pool = await create_pool(database_url, min_size=1, max_size=2)
    try:
        row = await pool.fetchrow(
            "SELECT tenant, role, revoked_at FROM api_keys WHERE key_hash = $1",
            hash_api_key(api_key),
        )
        if row is not None:
            if row["revoked_at"] is not None or row["role"] != Role.ADMIN.value:
                state = "revoked" if row["revoked_at"] is not None else f"a {row['role']} key"
                raise StackError(
                    f"the dev API key exists but is {state}; use another key"
                    " (STEPWISE_BOOTSTRAP_API_KEY, or delete dev-identity.json)"
                )
            return str(row["tenant"])
        tenant = uuid.UUID(tenant_id)
        if await pool.fetchval("SELECT 1 FROM tenants WHERE tenant = $1", tenant):
            await create_key(pool, tenant, Role.ADMIN, f"{tenant_name} admin", api_key)
        else:
            await create_tenant(pool, tenant_name, api_key, tenant)
        return tenant_id
    except AdminError as exc:
        raise StackError(f"cannot create the {tenant_name} tenant's admin key: {exc}") from None
    finally:
        await pool.close()


async def ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def terminate_connections(database_url: str) -> int:
    """Terminate every other backend connected to the database; returns how many."""
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(count or 0)
    finally:
        await conn.close()


def run_coroutine(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from sync code, even when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


def command_line(pid: int) -> str | None:
    """The command line of a live process (Linux /proc), arguments joined by spaces."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace") or None


def _replace_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


class Stack:
    """Temporal, NATS, Postgres and the four services, each a child process of this one."""

    def __init__(
        self,
        home: Path,
        *,
        database_url: str | None = None,
        nats_url: str | None = None,
        with_worker: bool = True,
        extra_env: Mapping[str, str] | None = None,
        preferred_ports: bool = False,
        temporal_ui: bool = False,
        tenant_id: str | None = None,
        api_key: str | None = None,
        tenant_name: str = "dev",
        secret_key: str | None = None,
        ready_timeout_s: float = 60.0,
        progress: Progress | None = None,
        replicas: Mapping[str, int] | None = None,
        nats_nodes: int = 1,
    ) -> None:
        """`database_url`/`nats_url` None → start our own (embedded Postgres / nats-server).

        `preferred_ports` picks the well-known ports (7233, 4222, 8080…) when free, as `make run`
        does; otherwise every port is a free one (tests). `tenant_id`/`api_key` default to fresh
        ones; `api_key` becomes an admin key (the tenant is taken from the key when it exists).
        `replicas`: processes per service (default 1 each); `nats_nodes` > 1: our own JetStream
        cluster of that many nodes (not with `nats_url`).
        """
        counts = {spec.name: 1 for spec in SERVICES}
        for service, count in (replicas or {}).items():
            service = ALIASES.get(service, service)
            if service not in counts:
                raise StackError(f"{service!r} is not a service; services: {list(counts)}")
            if not 1 <= count <= MAX_REPLICAS:
                raise StackError(f"{service}: {count} replicas (1 to {MAX_REPLICAS})")
            counts[service] = count
        if not 1 <= nats_nodes <= 5:
            raise StackError(f"nats_nodes={nats_nodes}: a JetStream cluster has 1 to 5 nodes")
        if nats_nodes > 1 and nats_url is not None:
            raise StackError("nats_nodes > 1 starts our own cluster: do not pass nats_url too")
        self.replicas = counts
        self.nats_nodes = nats_nodes
        self._replica_of = {
            name: spec for spec in SERVICES for name in replica_names(spec.name, counts[spec.name])
        }
        self.home = home.resolve()
        self.with_worker = with_worker
        self.extra_env = dict(extra_env or {})
        self.preferred_ports = preferred_ports
        self.temporal_ui = temporal_ui
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.api_key = api_key or generate_api_key()
        self.tenant_name = tenant_name
        self.secret_key = secret_key or secrets.token_urlsafe(32)
        self.ready_timeout_s = ready_timeout_s
        self._progress = progress
        self.database_url = database_url or ""
        self.nats_url = nats_url or ""
        self.temporal_address = ""
        self.temporal_ui_url: str | None = None
        self.postgres_admin_url: str | None = None
        self.migrations_applied: list[str] = []
        self._external_db = database_url is not None
        self._external_nats = nats_url is not None
        self._infra: dict[str, ManagedProcess] = {}
        self._services: dict[str, ManagedProcess] = {}
        self._urls: dict[str, str] = {}
        self._ports: dict[str, int] = {}
        self._expected_down: set[str] = set()
        self._abort = threading.Event()
        self._claimed = False

    # ---------------------------------------------------------------- lifetime

    def start(self) -> Stack:
        """Bring everything up, in order; on any failure stop what was started and re-raise."""
        self._abort.clear()
        self.claim_home()
        try:
            self._start_infra()
            self._prepare_database()
            self._start_services(
                [
                    name
                    for name, spec in self._replica_of.items()
                    if self.with_worker or spec.name != "worker"
                ]
            )
            self.write_state()
        except BaseException:
            self.stop()
            raise
        return self

    def claim_home(self) -> None:
        """Make `home` ours: refuse it while another live stack owns it (two stacks would share
        the Temporal database, the JetStream store and pgdata); SIGKILL what a stack that died
        without stopping (kill -9 of its launcher) left running there."""
        if self._claimed:
            return
        self.home.mkdir(parents=True, exist_ok=True)
        path = self.home / STATE_FILE
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError):
            old = {}
        owner = old.get("owner_pid")
        if (
            isinstance(owner, int)
            and owner != os.getpid()
            and not process_gone(owner)
            and command_line(owner) == old.get("owner_cmdline")
        ):
            raise StackError(
                f"{self.home} is in use by another running stack (pid {owner}); "
                "stop it or use another STEPWISE_HOME"
            )
        for name, info in old.get("processes", {}).items():
            pid, cmdline = info.get("pid"), info.get("cmdline")
            # Same pid AND same command line: not a recycled pid of some unrelated process.
            if isinstance(pid, int) and cmdline and command_line(pid) == cmdline:
                started = time.monotonic()
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
                self._report(
                    f"{name} (stale)", f"killed pid {pid}, left by an earlier run", started
                )
        self._claimed = True
        self.write_state()

    def request_abort(self) -> None:
        """Make a `start` in progress give up at its next wait (safe from a signal handler)."""
        self._abort.set()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Services first (all at once), then the infrastructure. Idempotent.

        `timeout_s` is longer than a service's own shutdown grace (the sweeper lets a batch finish
        for up to 20 s), so SIGKILL is the exception.
        """
        stop_all(self._services.values(), timeout_s)
        stop_all(self._infra.values(), timeout_s)
        if self._claimed:
            (self.home / STATE_FILE).unlink(missing_ok=True)
            self._claimed = False

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- access

    @property
    def env(self) -> dict[str, str]:
        """The services' common environment (each service also gets its own port variable)."""
        return {
            "DATABASE_URL": self.database_url,
            "TEMPORAL_ADDRESS": self.temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "NATS_URL": self.nats_url,
            "STEPWISE_SECRET_KEY": self.secret_key,
            "STEPWISE_BIND_HOST": "127.0.0.1",
            "STEPWISE_LOG_FORMAT": "json",
            "STEPWISE_HOME": str(self.home),
            # our own NATS: a stream replica on every node (an external one: the caller's say)
            **(
                {}
                if self._external_nats
                else {"STEPWISE_NATS_STREAM_REPLICAS": str(self.nats_nodes)}
            ),
            **self.extra_env,
        }

    @property
    def api_url(self) -> str:
        return self.service_url("api")

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self._ports[self._canonical(name)]}"

    def service_urls(self, service: str) -> list[str]:
        """The base URL of every replica of a service (`api` → the API replicas' URLs)."""
        service = self._canonical(service)
        return [self.service_url(n) for n in replica_names(service, self.replicas[service])]

    def replica_names(self, service: str) -> list[str]:
        service = self._canonical(service)
        return replica_names(service, self.replicas[service])

    def service(self, name: str) -> ManagedProcess:
        name = self._canonical(name)
        if name in self._services:
            return self._services[name]
        if name in self._infra:
            return self._infra[name]
        raise StackError(f"{name} is not running in this stack (started: {self.components()})")

    def components(self) -> list[str]:
        return [*self._infra, *self._services]

    def logs_tail(self, lines: int = 15) -> str:
        """The last lines of every component's log (for a failing test's report)."""
        return "\n".join(
            f"--- {proc.name} ({proc.log_path}, pid {proc.pid}, "
            f"{'alive' if proc.alive() else f'exited {proc.returncode}'})\n{proc.tail(lines)}"
            for proc in [*self._infra.values(), *self._services.values()]
        )

    def dead(self) -> list[ManagedProcess]:
        """Components that exited although nobody stopped or killed them."""
        return [
            proc
            for name, proc in [*self._infra.items(), *self._services.items()]
            if name not in self._expected_down and proc.proc is not None and not proc.alive()
        ]

    # ---------------------------------------------------------------- faults and restarts

    def kill(self, name: str) -> None:
        """SIGKILL the component's whole process group (no cleanup runs)."""
        proc = self.service(name)
        self._expected_down.add(proc.name)
        proc.kill()
        self.write_state()

    def stop_component(self, name: str, timeout_s: float = 30.0) -> None:
        """Stop one component cleanly (SIGTERM; SIGINT for Postgres)."""
        proc = self.service(name)
        self._expected_down.add(proc.name)
        proc.stop(timeout_s)
        self.write_state()

    def restart(
        self, name: str, *, hard: bool = False, env: Mapping[str, str] | None = None
    ) -> None:
        """Stop (or, `hard`, SIGKILL) a component, start it with the same command, wait ready.

        `env` overrides variables of this component from now on (e.g. a fault hook switched on
        for one run of the API; an empty value means the service's default).
        """
        proc = self.service(name)
        self._expected_down.add(proc.name)
        if hard:
            proc.kill()
        else:
            proc.stop()
        if env:
            proc.env = {**proc.env, **env}
        self._launch_and_wait(proc)

    def start_service(self, name: str, *, env: Mapping[str, str] | None = None) -> ManagedProcess:
        """Start a service that is not running (e.g. the worker of a stack built without it),
        with `env` overriding variables of this service from now on."""
        name = self._canonical(name)
        if name not in self._replica_of:
            raise StackError(f"{name} is not a service; services: {list(self._replica_of)}")
        proc = self._services.get(name) or self._service_process(self._replica_of[name], name)
        if proc.alive():
            raise StackError(f"{name} is already running (pid {proc.pid}); use restart()")
        if env:
            proc.env = {**proc.env, **env}
        self._services[name] = proc
        self._launch_and_wait(proc)
        return proc

    def restart_nats(self, *, hard: bool = False) -> None:
        """Restart our nats-server on the same port with the same JetStream store."""
        if "nats" not in self._infra:
            raise StackError(
                "NATS is external (NATS_URL was given) or a cluster (restart one node by name:"
                " nats-1…); this stack cannot restart it"
            )
        self.restart("nats", hard=hard)

    def restart_postgres(self, *, hard: bool = False) -> None:
        """Restart the embedded Postgres (fast shutdown, or SIGKILL → crash recovery)."""
        if "postgres" not in self._infra:
            raise StackError(
                "Postgres is external (DATABASE_URL was given); use postgres_blip() instead"
            )
        self.restart("postgres", hard=hard)

    def postgres_blip(self) -> int:
        """Terminate every connection to the stack's database (a "Postgres blip")."""
        url = self.database_url
        return run_coroutine(lambda: terminate_connections(url))

    # ---------------------------------------------------------------- internals

    def _canonical(self, name: str) -> str:
        base, dash, index = name.rpartition("-")
        if dash and index.isdigit() and base in ALIASES:
            return f"{ALIASES[base]}-{index}"  # router-2 → event-router-2
        return ALIASES.get(name, name)

    def _report(self, name: str, detail: str, started: float) -> None:
        if self._progress is not None:
            self._progress(name, detail, time.monotonic() - started)

    def _pick_port(self, preferred: int | None) -> int:
        taken = set(self._ports.values())
        port = free_port(preferred if self.preferred_ports else None)
        while port in taken:
            port = free_port()
        return port

    def _start_infra(self) -> None:
        """Launch Temporal, NATS and Postgres together, then wait for each in turn."""
        launched: list[tuple[ManagedProcess, str, float, _Rebuild | None]] = []

        def launch(proc: ManagedProcess, detail: str, again: _Rebuild | None = None) -> None:
            self._infra[proc.name] = proc
            launched.append((proc, detail, time.monotonic(), again))
            proc.start()
            self.write_state()

        temporal, detail = self._temporal_server(7233 if self.preferred_ports else None)
        launch(temporal, detail, lambda: self._temporal_server(None))
        if not self._external_nats and self.nats_nodes > 1:
            preferred = [4222 + i for i in range(self.nats_nodes)] if self.preferred_ports else None
            nodes, urls = nats_cluster(self.home, self.nats_nodes, preferred)
            self.nats_url = ",".join(urls)
            for node, url in zip(nodes, urls, strict=True):
                self._urls[node.name] = url
                launch(node, f"{url} · JetStream cluster node, store {self.home / node.name}")
        elif not self._external_nats:
            nats, self.nats_url = nats_server(self.home, 4222 if self.preferred_ports else None)
            self._urls["nats"] = self.nats_url
            launch(nats, f"{self.nats_url} · JetStream store {self.home / 'nats'}")
        if not self._external_db:
            postgres, admin_url = embedded_postgres(
                self.home, 5432 if self.preferred_ports else None
            )
            self.postgres_admin_url = admin_url
            self.database_url = _replace_database(admin_url, EMBEDDED_DATABASE)
            self._urls["postgres"] = self.database_url
            launch(postgres, f"{self.database_url} · embedded, data {self.home / 'pgdata'}")
        for proc, detail, started, again in launched:
            for attempt in range(_PORT_RACE_ATTEMPTS):
                try:
                    proc.wait_ready(self.ready_timeout_s, self._abort)
                    break
                except RuntimeError:
                    # A port picked free was taken before the server bound it (another process's
                    # outgoing connection can land on it): pick new ones and start it again.
                    last = attempt == _PORT_RACE_ATTEMPTS - 1
                    if again is None or last or _PORT_TAKEN not in proc.tail(50):
                        raise
                    proc, detail = again()
                    self._infra[proc.name] = proc
                    started = time.monotonic()
                    proc.start()
                    self.write_state()
            self._report(proc.name, detail, started)

    def _temporal_server(self, port: int | None) -> tuple[ManagedProcess, str]:
        """The Temporal dev server's process (not started) on `port` (None: any free port), its
        address and UI recorded on the stack; returns it with its line for the start report."""
        if self.temporal_ui:
            ui_port = 8233 if self.preferred_ports and port is not None else None
            # the UI decodes claim-checked payloads through the API's codec route
            api_port = self._ports.get("api") or self._pick_port(_SPECS["api"].default_port)
            self._ports["api"] = api_port
            temporal, self.temporal_address, ui = temporal_dev_server(
                self.home, port, ui_port, f"http://127.0.0.1:{api_port}/api/codec"
            )
            if self.extra_env.get("STEPWISE_CODEC_CORS_ORIGINS") in (None, self.temporal_ui_url):
                self.extra_env["STEPWISE_CODEC_CORS_ORIGINS"] = ui
            self.temporal_ui_url = ui
            detail = f"{self.temporal_address} · UI {ui}"
        else:
            temporal, self.temporal_address = temporal_dev_server_headless(self.home, port)
            detail = self.temporal_address
        self._urls["temporal"] = self.temporal_address
        return temporal, detail

    def _prepare_database(self) -> None:
        if self._abort.is_set():
            raise StartAborted("interrupted before migrations")
        started = time.monotonic()
        admin_url = self.postgres_admin_url
        database_url = self.database_url

        async def prepare() -> tuple[list[str], str]:
            if admin_url is not None:
                await ensure_database(admin_url, EMBEDDED_DATABASE)
            applied = await migrate(database_url)
            tenant = await ensure_admin_key(
                database_url, self.tenant_id, self.api_key, self.tenant_name
            )
            return applied, tenant

        self.migrations_applied, self.tenant_id = run_coroutine(prepare)
        applied = ", ".join(self.migrations_applied) or "none, up to date"
        self._report("migrations", f"applied: {applied}", started)
        self._report("tenant", f"{self.tenant_name} {self.tenant_id} with an admin key", started)

    def _service_process(self, spec: ServiceSpec, name: str) -> ManagedProcess:
        """Replica `name` of `spec` (the first replica is named after the service and gets its
        well-known port when `preferred_ports`; the others take free ports)."""
        preferred = spec.default_port if name == spec.name else None
        port = self._ports.get(name) or self._pick_port(preferred)
        self._ports[name] = port
        url = f"http://127.0.0.1:{port}"
        self._urls[name] = url
        return ManagedProcess(
            name=name,
            argv=[sys.executable, "-m", spec.module],
            log_path=self.home / "logs" / f"{name}.log",
            env={**self.env, spec.port_env: str(port)},
            ready=http_ready(f"{url}/readyz"),
        )

    def _start_services(self, names: list[str]) -> None:
        launched: list[tuple[ManagedProcess, float]] = []
        for name in names:
            proc = self._service_process(self._replica_of[name], name)
            self._services[name] = proc
            launched.append((proc.start(), time.monotonic()))
        self.write_state()
        for proc, started in launched:
            proc.wait_ready(self.ready_timeout_s, self._abort)
            self._report(proc.name, f"{self._urls[proc.name]} ready", started)

    def _launch_and_wait(self, proc: ManagedProcess) -> None:
        started = time.monotonic()
        proc.start()
        self._expected_down.discard(proc.name)
        self.write_state()
        proc.wait_ready(self.ready_timeout_s, self._abort)
        self._report(proc.name, f"{self._urls.get(proc.name, '')} ready", started)

    def write_state(self) -> None:
        """`home/stack.json`: URLs, pids and log files of the running stack (no secrets)."""
        state = {
            "owner_pid": os.getpid(),
            "owner_cmdline": command_line(os.getpid()),
            "api_url": self._urls.get("api"),
            "database_url": self.database_url,
            "nats_url": self.nats_url,
            "temporal_address": self.temporal_address,
            "temporal_ui_url": self.temporal_ui_url,
            "tenant_id": self.tenant_id,
            "processes": {
                name: {
                    "pid": proc.pid,
                    "cmdline": " ".join(proc.argv),
                    "alive": proc.alive(),
                    "url": self._urls.get(name),
                    "log": str(proc.log_path),
                }
                for name, proc in [*self._infra.items(), *self._services.items()]
            },
        }
        path = self.home / STATE_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.replace(path)
