"""Readiness checks of the real dependencies, shared by every service's `/readyz`.

The clients are only annotated here: a check calls the client its service already built, so a
service without NATS (the sweeper) never imports nats-py through this module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stepwise_contract.platform.ops import ReadinessCheck

if TYPE_CHECKING:
    import asyncpg
    from nats.aio.client import Client as NATS
    from temporalio.client import Client


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
