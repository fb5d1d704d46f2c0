"""The one way a Stepwise process connects to Temporal: always with the msgspec converter."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor

from stepwise_contract.claim_check import ClaimStore
from stepwise_contract.converter import data_converter
from stepwise_contract.platform.temporal_access import TemporalAccess


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    claims: ClaimStore | None,
    lazy: bool = False,
    interceptors: Sequence[Interceptor] = (),
    access: TemporalAccess | None = None,
) -> Client:
    """`lazy=True` connects on first use, so a process can start (and report not-ready) while
    Temporal is down; every call then fails fast until Temporal is reachable (workers need
    `lazy=False`). `interceptors` (e.g. `tracing.temporal_interceptors`) apply to the client
    and to every worker built on it. `claims` stores the payloads over 256 KiB
    (`claim_store.PostgresClaimStore`); only a process that never carries run data (the doctor)
    passes None, and then cannot read a large payload. `access`: TLS, client certificate and API
    key of a cluster that requires them (`CommonSettings.temporal_access`)."""
    access = access or TemporalAccess()
    return await Client.connect(
        address,
        namespace=namespace,
        tls=access.tls_config(),
        api_key=access.api_key,
        data_converter=data_converter(claims),
        lazy=lazy,
        interceptors=interceptors,
    )
