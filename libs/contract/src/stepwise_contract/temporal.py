"""The one way a Stepwise process connects to Temporal: always with the msgspec converter."""

from __future__ import annotations

from collections.abc import Sequence

from temporalio.client import Client, Interceptor

from stepwise_contract.converter import DATA_CONVERTER


async def connect_temporal(
    address: str,
    namespace: str,
    *,
    lazy: bool = False,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """`lazy=True` connects on first use, so a process can start (and report not-ready) while
    Temporal is down; every call then fails fast until Temporal is reachable (workers need
    `lazy=False`). `interceptors` (e.g. `tracing.temporal_interceptors`) apply to the client
    and to every worker built on it."""
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=DATA_CONVERTER,
        lazy=lazy,
        interceptors=interceptors,
    )
