"""Authentication and authorization (SPEC §7).

A key arrives as `Authorization: Bearer <key>` or `x-api-key: <key>`; its sha256 is looked up in
`api_keys` (the key itself is never stored). The same query loads the tenant's suspension flag and
redaction settings, so a lookup costs one round trip for all of them, and a verified key is kept
for `STEPWISE_API_AUTH_CACHE_S` seconds (`KeyCache`): a revocation, suspension or redaction change
is honoured within that bound. Roles:
read ⊂ manage ⊂ admin and read ⊂ publish ⊂ admin (`Role.grants`). A suspended tenant may read;
every write answers 403 `TENANT_SUSPENDED`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg
from aiohttp import web
from stepwise_contract.api_keys import hash_api_key
from stepwise_contract.enums import Role

from stepwise_api.errors import ApiError
from stepwise_api.key_cache import KeyCache
from stepwise_api.redaction import Redactor

_LOOKUP = """
SELECT k.key_id, k.name AS key_name, k.tenant, k.role, t.suspended,
       t.redaction_key_patterns, t.redaction_pointers
  FROM api_keys k JOIN tenants t ON t.tenant = k.tenant
 WHERE k.key_hash = $1 AND k.revoked_at IS NULL
"""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's tenant and role, and that tenant's redaction settings."""

    tenant: uuid.UUID
    key_id: uuid.UUID
    role: Role
    suspended: bool
    redactor: Redactor
    key_name: str = ""

    def launched_by(self) -> dict[str, str]:
        """Who started a run, as recorded in its `trigger_metadata_json.launchedBy` (the key's
        id, name and role, never the key)."""
        return {"keyId": str(self.key_id), "keyName": self.key_name, "role": self.role.value}


def presented_key(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    key = request.headers.get("x-api-key", "").strip()
    return key or None


async def authenticate(
    pool: asyncpg.Pool, cache: KeyCache[Principal], request: web.Request
) -> Principal:
    key = presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "UNAUTHENTICATED",
            "an API key is required (Authorization: Bearer <key> or x-api-key)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    key_hash = hash_api_key(key)
    cached = cache.get(key_hash)
    if cached is not None:
        return cached
    looked_up_at = cache.now()
    row = await pool.fetchrow(_LOOKUP, key_hash)
    if row is None:
        raise ApiError(
            401,
            "INVALID_API_KEY",
            "the API key is unknown or revoked",
            headers={"WWW-Authenticate": "Bearer"},
        )
    principal = Principal(
        tenant=row["tenant"],
        key_id=row["key_id"],
        role=Role(row["role"]),
        suspended=row["suspended"],
        key_name=row["key_name"],
        redactor=Redactor.from_settings(
            row["redaction_key_patterns"] or [], row["redaction_pointers"] or []
        ),
    )
    cache.put(key_hash, principal, looked_up_at)
    return principal


def authorize(principal: Principal, needed: Role, *, write: bool) -> None:
    if not principal.role.grants(needed):
        raise ApiError(
            403,
            "FORBIDDEN",
            f"this route needs the {needed.value!r} role; the key has {principal.role.value!r}",
        )
    if write and principal.suspended:
        raise ApiError(403, "TENANT_SUSPENDED", "the tenant is suspended: reads only")
