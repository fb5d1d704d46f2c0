"""The verified-key cache: a revoked key (or a suspended tenant) stops working within the stated
bound (`STEPWISE_API_AUTH_CACHE_S`), never later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg
from stepwise_api.key_cache import KeyCache
from stepwise_cli.admin_operations import create_key, revoke_key, set_suspended
from stepwise_contract.enums import Role

BOUND_S = 2.0


async def _status_until(
    client: Any,
    headers: dict[str, str],
    wanted: int,
    timeout_s: float,
) -> float:
    """Seconds until `GET /api/workflow-runs` answers `wanted` (polling); fails after timeout."""
    started = time.monotonic()
    while True:
        resp = await client.get("/api/workflow-runs", headers=headers)
        if resp.status == wanted:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout_s, f"still {resp.status} after {timeout_s}s"
        await asyncio.sleep(0.05)


async def test_a_revoked_key_stops_working_within_the_bound(
    app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    client = await app_factory(STEPWISE_API_AUTH_CACHE_S=str(BOUND_S))
    key_id, key = await create_key(pool, tenant.id, Role.READ)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/workflow-runs", headers=headers)).status == 200
    revoked_at = time.monotonic()
    await revoke_key(pool, key_id)
    # the cached key may keep working, but not past the bound (+ slack for a loaded machine's
    # request round trip; the bound counts from the lookup that preceded the revocation)
    await _status_until(client, headers, 401, BOUND_S + 5)
    assert time.monotonic() - revoked_at < BOUND_S + 5
    # and it stays revoked (no stale entry comes back)
    for _ in range(3):
        assert (await client.get("/api/workflow-runs", headers=headers)).status == 401


async def test_a_suspension_takes_effect_within_the_bound(
    app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    client = await app_factory(STEPWISE_API_AUTH_CACHE_S=str(BOUND_S))
    assert (await client.get("/api/workflow-runs", headers=tenant.headers())).status == 200
    await set_suspended(pool, tenant.id, True)
    try:
        started = time.monotonic()
        while True:
            resp = await client.post(
                "/api/workflow/events", json={"eventName": "X"}, headers=tenant.headers()
            )
            if resp.status == 403:
                assert (await resp.json())["code"] == "TENANT_SUSPENDED"
                break
            assert time.monotonic() - started < BOUND_S + 5, f"still {resp.status}"
            await asyncio.sleep(0.05)
    finally:
        await set_suspended(pool, tenant.id, False)


async def test_a_cached_key_skips_the_lookup(
    app_factory: Callable[..., Any], tenant: Any, pool: asyncpg.Pool
) -> None:
    client = await app_factory(STEPWISE_API_AUTH_CACHE_S="30")
    key_id, key = await create_key(pool, tenant.id, Role.READ)
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get("/api/workflow-runs", headers=headers)).status == 200
    await revoke_key(pool, key_id)
    # within the bound the verified key is served from the cache (this is what saves the trip)
    assert (await client.get("/api/workflow-runs", headers=headers)).status == 200
    # a revoked key is refused, whatever another replica still holds
    fresh = await app_factory(STEPWISE_API_AUTH_CACHE_S="30")
    assert (await fresh.get("/api/workflow-runs", headers=headers)).status == 401


def test_entries_expire_and_the_cache_is_bounded() -> None:
    now = [100.0]
    cache: KeyCache[str] = KeyCache(5.0, max_entries=2, clock=lambda: now[0])
    cache.put("a", "A", looked_up_at=100.0)
    assert cache.get("a") == "A"
    now[0] = 104.9
    assert cache.get("a") == "A"
    now[0] = 105.0
    assert cache.get("a") is None
    # the bound counts from the lookup's start, not from when the answer was stored
    cache.put("b", "B", looked_up_at=99.0)
    assert cache.get("b") is None
    # full: emptied, never grown past the bound
    cache.put("c", "C", looked_up_at=105.0)
    cache.put("d", "D", looked_up_at=105.0)
    cache.put("e", "E", looked_up_at=105.0)
    assert cache.get("e") == "E" and len(cache._entries) <= 2


def test_zero_disables_the_cache() -> None:
    cache: KeyCache[str] = KeyCache(0.0)
    cache.put("a", "A", looked_up_at=cache.now())
    assert cache.get("a") is None
