"""Typed settings of stepwise-router, parsed once at the entry point (SPEC §12).

- `STEPWISE_EVENT_MAX_DELIVER` (5): deliveries of one message before it goes to the DLQ
  (`MAX_DELIVER`).
- `STEPWISE_ROUTER_CONCURRENCY` (64): messages in flight per router process. Their statements are
  grouped (`group_commit.py`), so more in flight means bigger batches, not more connections.
- `STEPWISE_ROUTER_BATCH` (16): most messages asked for in one pull request.
- `STEPWISE_ROUTER_ACK_WAIT_S` (30): how long a delivery may stay unacknowledged before JetStream
  offers it again (a crashed router's messages come back after this).
- `STEPWISE_ROUTER_BACKOFF_S` (`1,2,5,10`): delay before the next delivery after a transient
  failure of delivery n (the last value repeats).
- `STEPWISE_CORRELATION_PATHS` (`DEFAULT_CORRELATION_PATHS`): JSON
  `{"EVENT_TYPE": ["path", ...], "*": [...]}`; replaces the whole default map.
- `STEPWISE_ROUTER_PORT` (8082): the ops server (/healthz, /readyz, /metrics).
- `STEPWISE_ROUTER_DB_POOL_SIZE` (min(concurrency, 16) + 2): Postgres connections per router
  process; the in-flight messages' statements are grouped per step, so connections serve batches.

The lookback of the recent-event buffer (`STEPWISE_EVENT_LOOKBACK_S`) is not read here: the router
only appends to the buffer; the worker reads it within the lookback and the sweeper expires it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec
from stepwise_contract.platform.settings import (
    CommonSettings,
    SettingsError,
    env_float,
    env_int,
    env_port,
    env_str,
)

# Event type → payload paths whose values become correlation keys; `*` applies to every type after
# the type's own paths. The reference system's defaults, so adopted producers correlate unchanged.
DEFAULT_CORRELATION_PATHS: Final[dict[str, list[str]]] = {
    "*": ["ticketId", "clientId", "invoiceId", "projectId", "paymentId"],
    "TICKET_CREATED": ["ticketId"],
    "TICKET_UPDATED": ["ticketId"],
    "TICKET_CLOSED": ["ticketId"],
    "TICKET_COMMENT_ADDED": ["ticketId"],
    "TICKET_RESPONSE_STATE_CHANGED": ["ticketId"],
    "INVOICE_FINALIZED": ["invoiceId", "clientId"],
    "INVOICE_SENT": ["invoiceId", "clientId"],
    "INVOICE_STATUS_CHANGED": ["invoiceId", "clientId"],
}
DEFAULT_BACKOFF_S: Final = (1.0, 2.0, 5.0, 10.0)

_paths_decoder = msgspec.json.Decoder(dict[str, list[str]])


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    host: str
    port: int
    max_deliver: int = 5
    concurrency: int = 64
    batch: int = 16
    ack_wait_s: float = 30.0
    backoff_s: tuple[float, ...] = DEFAULT_BACKOFF_S
    correlation_paths: dict[str, list[str]] = msgspec.field(
        default_factory=lambda: dict(DEFAULT_CORRELATION_PATHS)
    )
    db_pool_size: int = 18

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        concurrency = env_int(environ, "STEPWISE_ROUTER_CONCURRENCY", 64, minimum=1)
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str(environ, "STEPWISE_BIND_HOST", "0.0.0.0"),
            port=env_port(environ, "STEPWISE_ROUTER_PORT", 8082),
            max_deliver=env_int(environ, "STEPWISE_EVENT_MAX_DELIVER", 5, minimum=1),
            concurrency=concurrency,
            batch=env_int(environ, "STEPWISE_ROUTER_BATCH", 16, minimum=1),
            # JetStream counts the ack wait in nanoseconds and refuses zero
            ack_wait_s=env_float(environ, "STEPWISE_ROUTER_ACK_WAIT_S", 30.0, minimum=0.5),
            backoff_s=_env_backoff(environ, "STEPWISE_ROUTER_BACKOFF_S"),
            correlation_paths=_env_paths(environ, "STEPWISE_CORRELATION_PATHS"),
            db_pool_size=env_int(
                environ, "STEPWISE_ROUTER_DB_POOL_SIZE", min(concurrency, 16) + 2, minimum=2
            ),
        )


def _env_backoff(environ: Mapping[str, str], name: str) -> tuple[float, ...]:
    raw = environ.get(name, "").strip()
    if not raw:
        return DEFAULT_BACKOFF_S
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise SettingsError(f"{name}={raw!r} must be comma-separated seconds, e.g. 1,2,5") from None
    if any(not d >= 0 for d in delays):
        raise SettingsError(f"{name}={raw!r}: delays must be >= 0")
    return delays


def _env_paths(environ: Mapping[str, str], name: str) -> dict[str, list[str]]:
    raw = environ.get(name, "").strip()
    if not raw:
        return dict(DEFAULT_CORRELATION_PATHS)
    try:
        paths = _paths_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise SettingsError(
            f"{name} must be a JSON object of event type → list of payload paths,"
            f' e.g. {{"*": ["ticketId"]}}: {exc}'
        ) from None
    for event_type, items in paths.items():
        if any(not item.strip() for item in items):
            raise SettingsError(f"{name}: empty path under {event_type!r}")
    return paths
