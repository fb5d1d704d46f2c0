"""The admin operations on the database: tenants, API keys, secrets, quotas, rate limits, fairness
weights, priority caps and redaction settings.

Plain async functions over an asyncpg pool or connection: `stepwise admin` calls them, and so do
the dev stack (its dev tenant and key) and tests. A refused operation raises `AdminError`.
"""

from __future__ import annotations

import re
import uuid
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from stepwise_contract.api_keys import generate_api_key, hash_api_key
from stepwise_contract.enums import Role
from stepwise_contract.platform.secrets import SecretKeyError, decrypt_secret, encrypt_secret
from stepwise_contract.priority import (
    FAIRNESS_WEIGHT_MAX,
    FAIRNESS_WEIGHT_MIN,
    valid_fairness_weight,
)
from stepwise_contract.redaction import compile_key_pattern, parse_pointer

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

# A string: the pooled-connection proxy is not subscriptable at runtime.
Executor: TypeAlias = "asyncpg.Pool | asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"


class AdminError(Exception):
    """A refused operation (unknown tenant, bad value); the CLI prints it and exits 1."""


async def create_key(
    pool: Executor,
    tenant_id: uuid.UUID,
    role: Role,
    name: str = "",
    api_key: str | None = None,
) -> tuple[uuid.UUID, str]:
    """A new API key of the tenant; returns (key id, the key — shown once, stored hashed)."""
    key = api_key or generate_api_key()
    key_id = uuid.uuid4()
    try:
        await pool.execute(
            "INSERT INTO api_keys (key_id, tenant, name, key_hash, role)"
            " VALUES ($1, $2, $3, $4, $5)",
            key_id, tenant_id, name, hash_api_key(key), role.value,
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError:
        raise AdminError(f"tenant {tenant_id} not found") from None
    except asyncpg.UniqueViolationError:
        raise AdminError("that API key already exists") from None
    return key_id, key


async def create_tenant(
    pool: asyncpg.Pool,
    name: str,
    api_key: str | None = None,
    tenant_id: uuid.UUID | None = None,
) -> tuple[uuid.UUID, str]:
    """A tenant with an admin key; returns (tenant id, admin API key)."""
    tenant = tenant_id or uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        try:
            await conn.execute("INSERT INTO tenants (tenant, name) VALUES ($1, $2)", tenant, name)
        except asyncpg.UniqueViolationError:
            raise AdminError(f"tenant {tenant} already exists") from None
        _, key = await create_key(conn, tenant, Role.ADMIN, f"{name} admin", api_key)
    return tenant, key


async def _update_tenant(pool: Executor, tenant_id: uuid.UUID, sql: str, *args: Any) -> None:
    status = await pool.execute(
        f"UPDATE tenants SET {sql}, updated_at = now() WHERE tenant = $1", tenant_id, *args
    )
    if status.endswith(" 0"):
        raise AdminError(f"tenant {tenant_id} not found")


async def set_suspended(pool: Executor, tenant_id: uuid.UUID, suspended: bool) -> None:
    await _update_tenant(pool, tenant_id, "suspended = $2", suspended)


async def revoke_key(pool: Executor, key_id: uuid.UUID) -> None:
    status = await pool.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE key_id = $1", key_id
    )
    if status.endswith(" 0"):
        raise AdminError(f"API key {key_id} not found")


async def set_secret(
    pool: Executor, secret_key: str, tenant_id: uuid.UUID, name: str, value: str
) -> None:
    if not secret_key:
        raise AdminError("STEPWISE_SECRET_KEY is not set: secrets are encrypted with it")
    if not name.strip():
        raise AdminError("a secret needs a name")
    await _check_secret_key(pool, secret_key, tenant_id)
    try:
        await pool.execute(
            "INSERT INTO tenant_secrets (tenant, name, value_encrypted) VALUES ($1, $2, $3)"
            " ON CONFLICT (tenant, name) DO UPDATE SET value_encrypted = EXCLUDED.value_encrypted,"
            " updated_at = now()",
            tenant_id, name, encrypt_secret(secret_key, value),
        )  # fmt: skip
    except asyncpg.ForeignKeyViolationError:
        raise AdminError(f"tenant {tenant_id} not found") from None


async def _check_secret_key(pool: Executor, secret_key: str, tenant_id: uuid.UUID) -> None:
    """Refuse a key that cannot decrypt the tenant's existing secrets: the worker decrypts with
    one key, so a value set with another would fail every run that uses it."""
    rows = await pool.fetch(
        "SELECT name, value_encrypted FROM tenant_secrets WHERE tenant = $1 ORDER BY name",
        tenant_id,
    )
    undecryptable = []
    for row in rows:
        try:
            decrypt_secret(secret_key, row["value_encrypted"])
        except SecretKeyError:
            undecryptable.append(row["name"])
    if undecryptable:
        listed = ", ".join(undecryptable[:5]) + (" …" if len(undecryptable) > 5 else "")
        raise AdminError(
            f"STEPWISE_SECRET_KEY is not the key tenant {tenant_id}'s secrets were set with: it "
            f"cannot decrypt {len(undecryptable)} of its {len(rows)} secret(s) ({listed}). Use "
            "the key the services run with (make run: STEPWISE_SECRET_KEY in "
            "$STEPWISE_HOME/dev.env); nothing was changed"
        )


async def set_quota(pool: Executor, tenant_id: uuid.UUID, steps: int | None) -> None:
    """`steps=None` = unlimited. Open usage periods take the new limit at once."""
    if steps is not None and steps < 0:
        raise AdminError("the step quota must be >= 0 (or unlimited)")
    await _update_tenant(pool, tenant_id, "step_quota_limit = $2", steps)
    await pool.execute(
        "UPDATE workflow_step_usage_periods SET effective_limit = $2, updated_at = now()"
        " WHERE tenant = $1 AND period_end > now()",
        tenant_id, steps,
    )  # fmt: skip


async def set_rate_limit(pool: Executor, tenant_id: uuid.UUID, per_min: int | None) -> None:
    """Launches per minute for the tenant across all API replicas; None = unlimited."""
    if per_min is not None and per_min < 1:
        raise AdminError("the launch rate limit must be >= 1 per minute (or unlimited)")
    await _update_tenant(pool, tenant_id, "run_rate_limit_per_min = $2", per_min)


async def set_fairness_weight(pool: Executor, tenant_id: uuid.UUID, weight: float) -> None:
    """The tenant's share of the task queue when tenants are backlogged: weight 3 is dispatched
    about three times as often as weight 1. Applies to runs started from now on."""
    if not valid_fairness_weight(weight):
        raise AdminError(
            f"the fairness weight must be a number from {FAIRNESS_WEIGHT_MIN:g} to"
            f" {FAIRNESS_WEIGHT_MAX:g}"
        )
    await _update_tenant(pool, tenant_id, "fairness_weight = $2", weight)


async def set_most_urgent_priority(pool: Executor, tenant_id: uuid.UUID, priority: int) -> None:
    """The most urgent priority the tenant's runs may start at (1 = uncapped … 5); a definition or
    launch asking for more urgency starts at this one. Applies to runs started from now on."""
    if not 1 <= priority <= 5:
        raise AdminError("the most urgent priority must be 1..5 (1 = uncapped)")
    await _update_tenant(pool, tenant_id, "most_urgent_priority = $2", priority)


def check_redaction(pointers: list[str], key_patterns: list[str]) -> None:
    for pointer in pointers:
        try:
            parse_pointer(pointer)
        except ValueError as exc:
            raise AdminError(str(exc)) from None
    for pattern in key_patterns:
        try:
            compile_key_pattern(pattern)
        except re.error as exc:
            raise AdminError(f"key pattern {pattern!r} is not a valid regex: {exc}") from None


async def set_redaction(
    pool: Executor, tenant_id: uuid.UUID, pointers: list[str], key_patterns: list[str]
) -> None:
    """Replace the tenant's redaction pointers and key patterns (both lists)."""
    check_redaction(pointers, key_patterns)
    await _update_tenant(
        pool,
        tenant_id,
        "redaction_pointers = $2, redaction_key_patterns = $3",
        pointers,
        key_patterns,
    )
