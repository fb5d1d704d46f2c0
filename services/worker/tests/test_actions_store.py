"""store.*@1 against the real Postgres schema: revisions, ifRevision, ttl/expiry, increment, list."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from stepwise_worker.actions.base import ActionContext, ActionFailure, ActionSettings, invoke
from stepwise_worker.actions.registry import ActionRegistry

REGISTRY = ActionRegistry.default()


def _ctx(tenant_id: str, pool: asyncpg.Pool, **settings: Any) -> ActionContext:
    return ActionContext(
        tenant_id=tenant_id,
        run_id=str(uuid.uuid4()),
        step_path="root.steps[0]",
        attempt=1,
        idempotency_key=str(uuid.uuid4()),
        pool=pool,
        settings=ActionSettings(**settings),
    )


async def _call(action_id: str, payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    action = REGISTRY.get(action_id, 1)
    assert action is not None
    return await invoke(action, payload, ctx)


async def _fails(action_id: str, payload: dict[str, Any], ctx: ActionContext) -> ActionFailure:
    with pytest.raises(ActionFailure) as info:
        await _call(action_id, payload, ctx)
    return info.value


async def _expire(pool: asyncpg.Pool, tenant_id: str, ns: str, key: str) -> None:
    """What time does to a row with a ttl, without waiting for it."""
    await pool.execute(
        "UPDATE workflow_data_store SET expires_at = now() - interval '1 second'"
        " WHERE tenant = $1 AND namespace = $2 AND key = $3",
        tenant_id,
        ns,
        key,
    )


async def test_set_creates_at_revision_one_and_each_write_adds_one(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ns", "key": "k"}
    assert await _call("store.set", {**key, "value": {"a": 1}}, ctx) == {
        "revision": 1,
        "created": True,
    }
    assert await _call("store.set", {**key, "value": [1, 2]}, ctx) == {
        "revision": 2,
        "created": False,
    }
    assert await _call("store.set", {**key, "value": "three"}, ctx) == {
        "revision": 3,
        "created": False,
    }
    got = await _call("store.get", key, ctx)
    assert got == {"found": True, "value": "three", "revision": 3, "expiresAt": None}
    row = await pool.fetchrow(
        "SELECT value_type, created_by_run_id FROM workflow_data_store"
        " WHERE tenant = $1 AND namespace = 'ns' AND key = 'k'",
        tenant_id,
    )
    assert row is not None
    assert row["value_type"] == "string"
    assert str(row["created_by_run_id"]) == ctx.run_id


async def test_null_and_scalar_values_round_trip(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    for i, value in enumerate([None, 0, 1.5, True, "", {"nested": {"x": [None]}}]):
        await _call("store.set", {"namespace": "v", "key": str(i), "value": value}, ctx)
        got = await _call("store.get", {"namespace": "v", "key": str(i)}, ctx)
        assert got["found"] is True
        assert got["value"] == value


async def test_get_of_a_missing_key(pool: asyncpg.Pool, tenant_id: str) -> None:
    got = await _call("store.get", {"namespace": "ns", "key": "nope"}, _ctx(tenant_id, pool))
    assert got == {"found": False, "value": None, "revision": None, "expiresAt": None}


async def test_keys_are_tenant_scoped(pool: asyncpg.Pool, tenant_id: str) -> None:
    other = _ctx(str(uuid.uuid4()), pool)
    await _call("store.set", {"namespace": "ns", "key": "k", "value": 1}, _ctx(tenant_id, pool))
    assert (await _call("store.get", {"namespace": "ns", "key": "k"}, other))["found"] is False
    assert await _call("store.set", {"namespace": "ns", "key": "k", "value": 2}, other) == {
        "revision": 1,
        "created": True,
    }


async def test_if_revision_zero_creates_only(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ns", "key": "once"}
    assert await _call("store.set", {**key, "value": "first", "ifRevision": 0}, ctx) == {
        "revision": 1,
        "created": True,
    }
    err = await _fails("store.set", {**key, "value": "second", "ifRevision": 0}, ctx)
    assert (err.category, err.code) == ("ActionError", "REVISION_CONFLICT")
    assert err.details == {"expectedRevision": 0, "currentRevision": 1}
    assert (await _call("store.get", key, ctx))["value"] == "first"


async def test_if_revision_matches_or_conflicts(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ns", "key": "cas"}
    await _call("store.set", {**key, "value": 1}, ctx)
    await _call("store.set", {**key, "value": 2}, ctx)
    assert await _call("store.set", {**key, "value": 3, "ifRevision": 2}, ctx) == {
        "revision": 3,
        "created": False,
    }
    err = await _fails("store.set", {**key, "value": 4, "ifRevision": 2}, ctx)
    assert (err.category, err.code, err.retryable) == ("ActionError", "REVISION_CONFLICT", False)
    assert err.details == {"expectedRevision": 2, "currentRevision": 3}
    assert await _call("store.get", key, ctx) == {
        "found": True,
        "value": 3,
        "revision": 3,
        "expiresAt": None,
    }


async def test_if_revision_on_a_missing_key_conflicts_and_creates_nothing(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ns", "key": "ghost"}
    err = await _fails("store.set", {**key, "value": 1, "ifRevision": 1}, ctx)
    assert err.code == "REVISION_CONFLICT"
    assert err.details == {"expectedRevision": 1, "currentRevision": None}
    assert (await _call("store.get", key, ctx))["found"] is False


async def test_concurrent_compare_and_set_has_one_winner(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ns", "key": "race"}
    await _call("store.set", {**key, "value": 0}, ctx)
    results = await asyncio.gather(
        *(_call("store.set", {**key, "value": i, "ifRevision": 1}, ctx) for i in range(10)),
        return_exceptions=True,
    )
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, ActionFailure)]
    assert winners == [{"revision": 2, "created": False}]
    assert len(losers) == 9
    assert {e.code for e in losers} == {"REVISION_CONFLICT"}


async def test_ttl_sets_expiry_and_a_plain_set_clears_it(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "ttl", "key": "k"}
    before = datetime.now(UTC)
    await _call("store.set", {**key, "value": 1, "ttlSeconds": 60}, ctx)
    got = await _call("store.get", key, ctx)
    expires = datetime.fromisoformat(got["expiresAt"])
    assert got["expiresAt"].endswith("Z")
    assert before + timedelta(seconds=55) < expires < before + timedelta(seconds=65)
    await _call("store.set", {**key, "value": 2}, ctx)
    assert (await _call("store.get", key, ctx))["expiresAt"] is None


async def test_expired_rows_are_absent_everywhere(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    ns = "exp"
    for k in ("a", "b", "c"):
        await _call("store.set", {"namespace": ns, "key": k, "value": k, "ttlSeconds": 3600}, ctx)
    for k in ("a", "b", "c"):
        await _expire(pool, tenant_id, ns, k)

    assert (await _call("store.get", {"namespace": ns, "key": "a"}, ctx))["found"] is False
    assert await _call("store.list", {"namespace": ns}, ctx) == {"items": [], "nextCursor": None}
    assert await _call("store.delete", {"namespace": ns, "key": "a"}, ctx) == {"deleted": False}

    # set overwrites an expired key as a fresh one, ttl gone unless given again
    assert await _call("store.set", {"namespace": ns, "key": "b", "value": "new"}, ctx) == {
        "revision": 1,
        "created": True,
    }
    assert await _call("store.get", {"namespace": ns, "key": "b"}, ctx) == {
        "found": True,
        "value": "new",
        "revision": 1,
        "expiresAt": None,
    }
    # create-only succeeds over an expired key
    assert await _call(
        "store.set", {"namespace": ns, "key": "c", "value": "again", "ifRevision": 0}, ctx
    ) == {"revision": 1, "created": True}
    # ...but ifRevision N does not match an expired row at N
    await _expire(pool, tenant_id, ns, "c")
    err = await _fails("store.set", {"namespace": ns, "key": "c", "value": 0, "ifRevision": 1}, ctx)
    assert err.code == "REVISION_CONFLICT"


async def test_delete(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "del", "key": "k"}
    await _call("store.set", {**key, "value": 1}, ctx)
    assert await _call("store.delete", key, ctx) == {"deleted": True}
    assert await _call("store.delete", key, ctx) == {"deleted": False}
    assert (await _call("store.get", key, ctx))["found"] is False
    # a key deleted and written again starts over
    assert (await _call("store.set", {**key, "value": 2}, ctx))["revision"] == 1


async def test_increment_from_missing_then_by_amounts(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "cnt", "key": "k"}
    assert await _call("store.increment", key, ctx) == {"value": 1, "revision": 1}
    assert await _call("store.increment", {**key, "by": 2.5}, ctx) == {"value": 3.5, "revision": 2}
    assert await _call("store.increment", {**key, "by": -10}, ctx) == {
        "value": -6.5,
        "revision": 3,
    }
    got = await _call("store.get", key, ctx)
    assert (got["value"], got["revision"]) == (-6.5, 3)
    # a value written by set is incremented too, and exact decimals stay exact
    await _call("store.set", {"namespace": "cnt", "key": "d", "value": 0.1}, ctx)
    out = await _call("store.increment", {"namespace": "cnt", "key": "d", "by": 0.2}, ctx)
    assert out == {"value": 0.3, "revision": 2}


async def test_increment_of_a_non_numeric_value_fails_and_changes_nothing(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    for i, value in enumerate(["5", {"n": 1}, None, True]):
        key = {"namespace": "cnt", "key": f"bad{i}"}
        await _call("store.set", {**key, "value": value}, ctx)
        err = await _fails("store.increment", key, ctx)
        assert (err.category, err.code) == ("ActionError", "NON_NUMERIC_VALUE")
        assert await _call("store.get", key, ctx) == {
            "found": True,
            "value": value,
            "revision": 1,
            "expiresAt": None,
        }


async def test_increment_ttl_and_expiry(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "cnt", "key": "window"}
    await _call("store.increment", {**key, "ttlSeconds": 3600}, ctx)
    first_expiry = (await _call("store.get", key, ctx))["expiresAt"]
    assert first_expiry is not None
    # without a ttl the live counter keeps its window
    await _call("store.increment", key, ctx)
    assert (await _call("store.get", key, ctx))["expiresAt"] == first_expiry
    # an expired counter restarts from 0, as a new key without expiry
    await _expire(pool, tenant_id, "cnt", "window")
    assert await _call("store.increment", {**key, "by": 5}, ctx) == {"value": 5, "revision": 1}
    assert (await _call("store.get", key, ctx))["expiresAt"] is None
    # an expired non-numeric value is absent too, so increment starts over
    await _call("store.set", {"namespace": "cnt", "key": "s", "value": "x", "ttlSeconds": 60}, ctx)
    await _expire(pool, tenant_id, "cnt", "s")
    assert await _call("store.increment", {"namespace": "cnt", "key": "s"}, ctx) == {
        "value": 1,
        "revision": 1,
    }


async def test_concurrent_increments_lose_nothing(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    key = {"namespace": "cnt", "key": "hot"}
    outs = await asyncio.gather(*(_call("store.increment", key, ctx) for _ in range(25)))
    assert sorted(o["revision"] for o in outs) == list(range(1, 26))
    assert sorted(o["value"] for o in outs) == list(range(1, 26))
    assert (await _call("store.get", key, ctx))["value"] == 25


async def test_list_pages_through_a_prefix_in_key_order(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    for k in ["user/3", "user/1", "user/5", "user/2", "user/4", "team/1", "users"]:
        await _call("store.set", {"namespace": "ls", "key": k, "value": {"k": k}}, ctx)
    await _call("store.set", {"namespace": "other", "key": "user/9", "value": 0}, ctx)

    keys: list[list[str]] = []
    cursor = None
    while True:
        page = await _call(
            "store.list", {"namespace": "ls", "prefix": "user/", "limit": 2, "cursor": cursor}, ctx
        )
        keys.append([item["key"] for item in page["items"]])
        for item in page["items"]:
            assert item == {
                "key": item["key"],
                "value": {"k": item["key"]},
                "revision": 1,
                "expiresAt": None,
            }
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert keys == [["user/1", "user/2"], ["user/3", "user/4"], ["user/5"]]

    everything = await _call("store.list", {"namespace": "ls"}, ctx)
    assert [i["key"] for i in everything["items"]] == sorted(
        ["user/3", "user/1", "user/5", "user/2", "user/4", "team/1", "users"]
    )
    assert everything["nextCursor"] is None
    # an exact fit leaves no next page
    exact = await _call("store.list", {"namespace": "ls", "prefix": "team/", "limit": 1}, ctx)
    assert ([i["key"] for i in exact["items"]], exact["nextCursor"]) == (["team/1"], None)


async def test_list_keeps_its_place_when_keys_are_added_or_removed(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    for k in ["b", "d", "f"]:
        await _call("store.set", {"namespace": "ks", "key": k, "value": 1}, ctx)
    first = await _call("store.list", {"namespace": "ks", "limit": 1}, ctx)
    await _call("store.delete", {"namespace": "ks", "key": "b"}, ctx)
    await _call("store.set", {"namespace": "ks", "key": "a", "value": 1}, ctx)
    await _call("store.set", {"namespace": "ks", "key": "c", "value": 1}, ctx)
    rest = await _call("store.list", {"namespace": "ks", "cursor": first["nextCursor"]}, ctx)
    assert [i["key"] for i in rest["items"]] == ["c", "d", "f"]


async def test_list_refuses_a_forged_cursor(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool)
    for cursor in ["not base64 !!", "e30", "W10"]:  # garbage, {}, []
        err = await _fails("store.list", {"namespace": "ls", "cursor": cursor}, ctx)
        assert (err.category, err.code) == ("ValidationError", "INVALID_CURSOR")


async def test_values_over_the_size_limit_are_refused(pool: asyncpg.Pool, tenant_id: str) -> None:
    ctx = _ctx(tenant_id, pool, store_max_value_bytes=100)
    err = await _fails("store.set", {"namespace": "big", "key": "k", "value": "x" * 200}, ctx)
    assert (err.category, err.code) == ("ValidationError", "VALUE_TOO_LARGE")
    assert (await _call("store.get", {"namespace": "big", "key": "k"}, ctx))["found"] is False


async def test_bad_input_is_a_validation_error_before_any_write(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, pool)
    bad_inputs: list[dict[str, Any]] = [
        {"namespace": "ns", "key": "k"},  # no value
        {"namespace": "", "key": "k", "value": 1},
        {"namespace": "ns", "key": "k", "value": 1, "ttlSeconds": 0},
        {"namespace": "ns", "key": "k", "value": 1, "ifRevision": -1},
        {"namespace": "ns", "key": "k", "value": 1, "unknown": True},
    ]
    for bad in bad_inputs:
        err = await _fails("store.set", bad, ctx)
        assert (err.category, err.code, err.retryable) == (
            "ValidationError",
            "INVALID_ACTION_INPUT",
            False,
        )
    assert await _call("store.list", {"namespace": "ns"}, ctx) == {"items": [], "nextCursor": None}


async def test_a_broken_database_is_a_transient_error(tenant_id: str, database_url: str) -> None:
    from stepwise_contract.platform.db import create_pool

    closed = await create_pool(database_url, max_size=1)
    await closed.close()
    err = await _fails("store.get", {"namespace": "ns", "key": "k"}, _ctx(tenant_id, closed))
    assert (err.category, err.code, err.retryable) == ("TransientError", "STORE_UNAVAILABLE", True)


class _TerminatedBackendPool:
    """A pool whose connection's backend the server terminated: asyncpg answers with an
    InternalClientError rather than a connection error (seen under pg_terminate_backend)."""

    async def fetchrow(self, *_: Any) -> None:
        raise asyncpg.InternalClientError("cannot switch to 'idle' state")


async def test_a_terminated_backend_is_a_transient_error(tenant_id: str) -> None:
    ctx = _ctx(tenant_id, _TerminatedBackendPool())  # type: ignore[arg-type]
    err = await _fails("store.increment", {"namespace": "ns", "key": "k"}, ctx)
    assert (err.category, err.code, err.retryable) == ("TransientError", "STORE_UNAVAILABLE", True)
