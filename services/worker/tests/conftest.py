"""The worker's test fixtures: one in-process worker per test module (on the contract task queue,
with every installed action and the probe actions). A module needing other options overrides
`worker`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from .runs import Probe, probe_actions, running_worker


@pytest.fixture(scope="module")
def probe() -> Probe:
    return Probe()


@pytest.fixture(scope="module")
async def worker(
    temporal_client: Client, pool: asyncpg.Pool, probe: Probe
) -> AsyncIterator[Worker]:
    async with running_worker(temporal_client, pool, extra_actions=probe_actions(probe)) as w:
        yield w
