"""Reading typed settings from the environment, once, at a service's entry point (SPEC §12).

Each service declares its own frozen settings Struct and a `from_env(environ)` built from these
readers; a bad value raises `SettingsError`, which `run_service` turns into a clear message and
exit status 2. Nothing below `main` reads `os.environ`.

There is deliberately no reader for an engine or a task queue: neither is configurable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import msgspec

from stepwise_contract.platform.connection_config import ConnectionConfigError
from stepwise_contract.platform.nats_connection import DEFAULT_NATS_URL, NatsSettings
from stepwise_contract.platform.otel_settings import OtelSettings, TracingConfigError
from stepwise_contract.platform.temporal_access import TemporalAccess

DEFAULT_DATABASE_URL: Final = "postgresql://postgres@127.0.0.1:5432/stepwise"
DEFAULT_TEMPORAL_ADDRESS: Final = "127.0.0.1:7233"


class SettingsError(ValueError):
    """A configuration value is missing or malformed."""


def env_str(environ: Mapping[str, str], name: str, default: str) -> str:
    value = environ.get(name, "").strip()
    return value or default


def env_int(
    environ: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name}={value} must be <= {maximum}")
    return value


def env_float(
    environ: Mapping[str, str], name: str, default: float, *, minimum: float | None = None
) -> float:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a number") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name}={value} must be >= {minimum}")
    return value


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    raw = environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use true/false)")


def env_choice(environ: Mapping[str, str], name: str, default: str, choices: set[str]) -> str:
    value = env_str(environ, name, default)
    if value not in choices:
        raise SettingsError(f"{name}={value!r} must be one of {sorted(choices)}")
    return value


def env_port(environ: Mapping[str, str], name: str, default: int) -> int:
    value = env_int(environ, name, default, minimum=0)
    if value > 65535:
        raise SettingsError(f"{name}={value} is not a TCP port")
    return value


class CommonSettings(msgspec.Struct, frozen=True, kw_only=True):
    """What every service needs to reach its dependencies."""

    database_url: str
    temporal_address: str
    temporal_namespace: str
    # NATS_URL as given (one URL or a comma-separated list), for messages; `nats` is what to use
    nats_url: str
    log_format: str
    log_level: str
    # OpenTelemetry tracing from the standard OTEL_* variables; off by default
    otel: OtelSettings = msgspec.field(default_factory=OtelSettings)
    # the parsed server list, credentials, TLS and stream replicas (nats_connection.py)
    nats: NatsSettings = msgspec.field(default_factory=NatsSettings)
    # TLS / mTLS / API key for a Temporal cluster other than a dev server (temporal_access.py)
    temporal_access: TemporalAccess = msgspec.field(default_factory=TemporalAccess)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> CommonSettings:
        database_url = env_str(environ, "DATABASE_URL", DEFAULT_DATABASE_URL)
        if not database_url.startswith(("postgres://", "postgresql://")):
            raise SettingsError(f"DATABASE_URL={database_url!r} must be a postgresql:// URL")
        nats_url = env_str(environ, "NATS_URL", DEFAULT_NATS_URL)
        temporal_address = env_str(environ, "TEMPORAL_ADDRESS", DEFAULT_TEMPORAL_ADDRESS)
        if ":" not in temporal_address:
            raise SettingsError(f"TEMPORAL_ADDRESS={temporal_address!r} must be host:port")
        return cls(
            database_url=database_url,
            temporal_address=temporal_address,
            temporal_namespace=env_str(environ, "TEMPORAL_NAMESPACE", "default"),
            nats_url=nats_url,
            log_format=env_choice(environ, "STEPWISE_LOG_FORMAT", "json", {"json", "console"}),
            log_level=env_choice(
                environ, "STEPWISE_LOG_LEVEL", "INFO", {"DEBUG", "INFO", "WARNING", "ERROR"}
            ),
            otel=_otel(environ),
            **_connections(environ),
        )


def _connections(environ: Mapping[str, str]) -> dict[str, Any]:
    try:
        return {
            "nats": NatsSettings.from_env(environ),
            "temporal_access": TemporalAccess.from_env(environ),
        }
    except ConnectionConfigError as exc:
        raise SettingsError(str(exc)) from None


def _otel(environ: Mapping[str, str]) -> OtelSettings:
    # OTEL_* is OpenTelemetry's own open family of variables (the SDK reads more of them itself,
    # e.g. OTEL_BSP_*, OTEL_PROPAGATORS): it is taken as a group, and a deployment forwards the
    # group rather than Stepwise listing each member as one of its settings.
    family = {name: value for name, value in environ.items() if name.startswith("OTEL_")}
    try:
        return OtelSettings.from_env(family)
    except TracingConfigError as exc:
        raise SettingsError(str(exc)) from None
