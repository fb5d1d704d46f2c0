"""`{"$secret": NAME}` references, resolved inside the action activity only (SPEC §9).

The workflow passes refs unresolved, so a secret never enters Temporal history. Here they are
replaced by the decrypted tenant secret for the handler, and by `"[SECRET:REDACTED]"` in what the
ledger records. Whatever the action returns or raises is scrubbed of the clear values before it
leaves the activity (an echo of a secret must not land in history either).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg
from stepwise_contract.expressions import is_secret_ref
from stepwise_contract.secrets import SECRET_REDACTED, SecretKeyError, decrypt_secret

SELECT_SECRETS = """
SELECT name, value_encrypted FROM tenant_secrets WHERE tenant = $1 AND name = ANY($2::text[])
"""


class SecretUnavailable(LookupError):
    """A referenced secret is not set for the tenant, or cannot be decrypted."""


def secret_names(value: Any) -> set[str]:
    names: set[str] = set()
    _collect(value, names)
    return names


def _collect(value: Any, names: set[str]) -> None:
    if is_secret_ref(value):
        names.add(str(value["$secret"]))
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, names)
    elif isinstance(value, list):
        for item in value:
            _collect(item, names)


async def load_secrets(
    pool: asyncpg.Pool, tenant_id: str, names: Iterable[str], secret_key: str
) -> dict[str, str]:
    wanted = sorted(set(names))
    rows = await pool.fetch(SELECT_SECRETS, uuid.UUID(tenant_id), wanted)
    found = {r["name"]: bytes(r["value_encrypted"]) for r in rows}
    missing = [n for n in wanted if n not in found]
    if missing:
        raise SecretUnavailable(f"secret {missing[0]!r} is not set for this tenant")
    try:
        return {name: decrypt_secret(secret_key, token) for name, token in found.items()}
    except SecretKeyError as exc:
        raise SecretUnavailable(str(exc)) from None


def substitute(value: Any, secrets: dict[str, str]) -> Any:
    """`value` with every ref replaced by its clear value."""
    if is_secret_ref(value):
        return secrets[str(value["$secret"])]
    if isinstance(value, dict):
        return {k: substitute(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, secrets) for v in value]
    return value


def redact(value: Any) -> Any:
    """`value` with every ref replaced by `"[SECRET:REDACTED]"` (what the ledger records)."""
    if is_secret_ref(value):
        return SECRET_REDACTED
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def scrub(value: Any, clear_values: Iterable[str]) -> Any:
    """`value` with every occurrence of a clear secret inside a string replaced."""
    needles = sorted((c for c in set(clear_values) if c), key=len, reverse=True)
    if not needles:
        return value
    return _scrub(value, needles)


def _scrub(value: Any, needles: list[str]) -> Any:
    if isinstance(value, str):
        for needle in needles:
            if needle in value:
                value = value.replace(needle, SECRET_REDACTED)
        return value
    if isinstance(value, dict):
        return {_scrub(k, needles): _scrub(v, needles) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v, needles) for v in value]
    return value
