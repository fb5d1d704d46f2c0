"""Readiness checks of the real dependencies, shared by every service's `/readyz`."""

from __future__ import annotations

import asyncpg
from nats.aio.client import Client as NATS
from temporalio.client import Client

from stepwise_contract.ops import ReadinessCheck


def postgres_check(pool: asyncpg.Pool) -> ReadinessCheck:
    async def check() -> None:
        await pool.fetchval("SELECT 1")

    return check


def temporal_check(client: Client) -> ReadinessCheck:
    async def check() -> None:
        if not await client.service_client.check_health():
            raise RuntimeError("Temporal frontend is not serving")

    return check


def nats_check(nc: NATS) -> ReadinessCheck:
    async def check() -> None:
        if not nc.is_connected:
            raise RuntimeError("not connected to NATS")
        await nc.flush(timeout=2)

    return check
