"""The one way a Stepwise process connects to Temporal: always with the msgspec converter."""

from __future__ import annotations

from temporalio.client import Client

from stepwise_contract.converter import DATA_CONVERTER


async def connect_temporal(address: str, namespace: str) -> Client:
    return await Client.connect(address, namespace=namespace, data_converter=DATA_CONVERTER)
