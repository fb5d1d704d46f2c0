"""`stepwise dev` (= `make run`): the whole system on this machine, embedded defaults.

Starts a `Stack` with the well-known ports when free, prints one line per component as it becomes
ready, then the API, Run Studio and Temporal UI URLs and the dev tenant's admin key, and writes
`$STEPWISE_HOME/dev.env` — only once every service is ready, removed again on stop. The dev tenant,
its admin key and the secret key are kept in `$STEPWISE_HOME/dev-identity.json`, so restarts reuse
them. Ctrl-C / SIGTERM stops everything; a component that dies on its own stops everything too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import Final

import msgspec
from stepwise_cli.stepwise_home import DEV_ENV_FILE, format_dev_env
from stepwise_contract.api_keys import generate_api_key
from stepwise_contract.platform.connection_config import ConnectionConfigError
from stepwise_contract.platform.nats_connection import parse_nats_urls
from stepwise_contract.platform.settings import SettingsError, env_choice, env_str

from stepwise_devkit.child_process import StartAborted
from stepwise_devkit.stack import Stack, StackError

IDENTITY_FILE: Final = "dev-identity.json"


class DevSettings(msgspec.Struct, frozen=True, kw_only=True):
    home: str
    database_url: str | None
    nats_url: str | None
    bootstrap_api_key: str | None
    secret_key: str | None
    log_format: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DevSettings:
        database_url = env_str(environ, "DATABASE_URL", "") or None
        if database_url and not database_url.startswith(("postgres://", "postgresql://")):
            raise SettingsError(f"DATABASE_URL={database_url!r} must be a postgresql:// URL")
        nats_url = env_str(environ, "NATS_URL", "") or None
        if nats_url:
            try:
                parse_nats_urls(nats_url)
            except ConnectionConfigError as exc:
                raise SettingsError(str(exc)) from None
        return cls(
            home=env_str(environ, "STEPWISE_HOME", ".stepwise"),
            database_url=database_url,
            nats_url=nats_url,
            bootstrap_api_key=env_str(environ, "STEPWISE_BOOTSTRAP_API_KEY", "") or None,
            secret_key=env_str(environ, "STEPWISE_SECRET_KEY", "") or None,
            log_format=env_choice(environ, "STEPWISE_LOG_FORMAT", "console", {"json", "console"}),
        )


class DevIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """What must survive a restart of the dev stack."""

    tenant_id: str
    api_key: str
    secret_key: str


def _write_private(path: Path, text: str) -> None:
    """Atomically, readable by the owner only (the file holds a key)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    tmp.replace(path)


def load_identity(home: Path) -> DevIdentity | None:
    try:
        return msgspec.json.decode((home / IDENTITY_FILE).read_bytes(), type=DevIdentity)
    except FileNotFoundError:
        return None
    except msgspec.DecodeError as exc:
        raise SettingsError(f"{home / IDENTITY_FILE} is unreadable ({exc}); delete it") from None


def save_identity(home: Path, identity: DevIdentity) -> None:
    _write_private(
        home / IDENTITY_FILE, msgspec.json.format(msgspec.json.encode(identity)).decode()
    )


def _say(text: str = "") -> None:
    print(text, flush=True)


def _progress(name: str, detail: str, seconds: float) -> None:
    _say(f"  ✓ {name:<13} {detail}  ({seconds:.1f} s)")


@contextlib.contextmanager
def _signals_request_stop(stack: Stack, stop: threading.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM → stop (the first one; later ones are ignored while we stop)."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        if not stop.is_set():
            stop.set()
            stack.request_abort()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_dev(
    environ: Mapping[str, str],
    *,
    replicas: Mapping[str, int] | None = None,
    nats_nodes: int = 1,
) -> int:
    """`replicas` / `nats_nodes`: `stepwise dev --replicas … --nats-nodes …` (default: one of
    everything, as `make run`)."""
    try:
        settings = DevSettings.from_env(environ)
        home = Path(settings.home).resolve()
        home.mkdir(parents=True, exist_ok=True)
        identity = load_identity(home)
    except (SettingsError, OSError) as exc:
        print(f"stepwise dev: {exc}", file=sys.stderr)
        return 2
    api_key = settings.bootstrap_api_key or (identity.api_key if identity else generate_api_key())
    secret_key = settings.secret_key or (
        identity.secret_key if identity else secrets.token_urlsafe(32)
    )
    stack = Stack(
        home,
        database_url=settings.database_url,
        nats_url=settings.nats_url,
        preferred_ports=True,
        temporal_ui=True,
        tenant_id=identity.tenant_id if identity else None,
        api_key=api_key,
        secret_key=secret_key,
        extra_env={"STEPWISE_LOG_FORMAT": settings.log_format},
        progress=_progress,
        replicas=replicas,
        nats_nodes=1 if settings.nats_url else nats_nodes,
    )
    _say(f"Stepwise dev stack in {home}")
    _say(f"  logs: {home / 'logs'}/<name>.log (temporal, nats, postgres, api, worker, …)")
    if settings.database_url:
        _say("  Postgres: DATABASE_URL (the machine's server)")
    if settings.nats_url:
        _say("  NATS: NATS_URL (not starting nats-server)")
    try:
        stack.claim_home()
    except StackError as exc:
        _say(f"  ✗ {exc}")
        return 1
    dev_env = home / DEV_ENV_FILE
    # A dev.env from an earlier run would describe a stack that is not (yet) running.
    dev_env.unlink(missing_ok=True)
    stop = threading.Event()
    status = 0
    started = time.monotonic()
    with _signals_request_stop(stack, stop):
        try:
            stack.start()
        except StartAborted:
            _say("Interrupted; everything started so far is stopped.")
            return 0
        except Exception as exc:
            _say(f"  ✗ {exc}")
            _say("Start failed; everything started so far is stopped.")
            return 1
        try:
            save_identity(
                home,
                DevIdentity(tenant_id=stack.tenant_id, api_key=api_key, secret_key=secret_key),
            )
            values = {
                "STEPWISE_API_URL": stack.api_url,
                "STEPWISE_API_KEY": api_key,
                "STEPWISE_TENANT_ID": stack.tenant_id,
                "NATS_URL": stack.nats_url,
                "DATABASE_URL": stack.database_url,
                "TEMPORAL_ADDRESS": stack.temporal_address,
                "TEMPORAL_UI_URL": stack.temporal_ui_url or "",
                # the admin CLI encrypts `secret set` values with it; the worker decrypts
                "STEPWISE_SECRET_KEY": secret_key,
            }
            _write_private(dev_env, format_dev_env(values))
            _say(f"Stepwise is ready ({time.monotonic() - started:.1f} s).")
            _say(f"  API          {stack.api_url}")
            for url in stack.service_urls("api")[1:]:
                _say(f"  API replica  {url}")
            _say(f"  Run Studio   {stack.api_url}/studio/")
            _say(f"  Temporal UI  {stack.temporal_ui_url}")
            _say(f"  API key      {api_key}  (admin of dev tenant {stack.tenant_id})")
            _say(f"  env file     {dev_env}  (use: set -a; . {dev_env}; set +a)")
            _say("Ctrl-C stops everything.")
            while not stop.wait(0.5):
                dead = stack.dead()
                if dead:
                    for proc in dead:
                        _say(
                            f"  ✗ {proc.name} exited unexpectedly (status {proc.returncode}); "
                            f"last lines of {proc.log_path}:"
                        )
                        _say("\n".join(f"      {line}" for line in proc.tail(10).splitlines()))
                    status = 1
                    break
        finally:
            _say("Stopping: services, then Temporal, NATS and Postgres…")
            stopping = time.monotonic()
            dev_env.unlink(missing_ok=True)
            stack.stop()
            _say(f"  ✓ stopped everything ({time.monotonic() - stopping:.1f} s)")
    return status
