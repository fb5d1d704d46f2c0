"""What every service does first at its entry point, and its Temporal client.

Needs the `ops`, `otel` and `postgres` extras, as every service that calls it has.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
from temporalio.client import Client, Interceptor

from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.logs import configure_logging
from stepwise_contract.platform.ops import stop_event_on_signals
from stepwise_contract.platform.settings import CommonSettings
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_contract.platform.tracing import TracerProvider, configure_tracing


def start_service(name: str, common: CommonSettings) -> tuple[TracerProvider | None, asyncio.Event]:
    """Logging configured, tracing set up (None unless `OTEL_*` ask for it), and the event that
    SIGTERM/SIGINT set."""
    configure_logging(service=name, log_format=common.log_format, level=common.log_level)
    return configure_tracing(name, common.otel), stop_event_on_signals()


async def connect_service_temporal(
    common: CommonSettings,
    pool: asyncpg.Pool,
    *,
    interceptors: Sequence[Interceptor] = (),
    lazy: bool = False,
) -> Client:
    """The service's client: its address, namespace and access, large payloads claimed in
    Postgres. `lazy`: see `connect_temporal`."""
    return await connect_temporal(
        common.temporal_address,
        common.temporal_namespace,
        claims=PostgresClaimStore(pool),
        lazy=lazy,
        interceptors=interceptors,
        access=common.temporal_access,
    )
