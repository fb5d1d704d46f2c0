"""`stepwise admin …`: `--json` output exactly as SPEC §7 documents it. One test runs the real
`stepwise` executable; the others call the same entry point in a thread (much faster)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from stepwise_cli.__main__ import main
from stepwise_contract.api_keys import hash_api_key
from stepwise_contract.secrets import decrypt_secret

STEPWISE = str(Path(sys.executable).parent / "stepwise")


async def _admin_process(database_url: str, *args: str) -> tuple[int, Any, str]:
    proc = await asyncio.create_subprocess_exec(
        STEPWISE, "admin", *args,
        env={**os.environ, "DATABASE_URL": database_url, "STEPWISE_SECRET_KEY": "k1"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    text = out.decode()
    parsed = json.loads(text) if proc.returncode == 0 and "--json" in args else text
    return proc.returncode or 0, parsed, err.decode()


_ENTRY_LOCK = asyncio.Lock()


async def _admin(
    database_url: str, *args: str, env: dict[str, str] | None = None
) -> tuple[int, Any, str]:
    """`stepwise admin ARGS` through `stepwise_cli.__main__.main`, in a thread (it runs its own
    event loop), with the environment and output streams it would have as a process."""
    settings = {"DATABASE_URL": database_url, "STEPWISE_SECRET_KEY": "k1", **(env or {})}

    def call() -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        saved = {k: os.environ.get(k) for k in settings}
        os.environ.update(settings)
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    code = main(["admin", *args])
                except SystemExit as exc:  # argparse usage errors
                    code = int(exc.code or 0)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        return code, out.getvalue(), err.getvalue()

    async with _ENTRY_LOCK:
        code, text, err = await asyncio.to_thread(call)
    parsed = json.loads(text) if code == 0 and "--json" in args else text
    return code, parsed, err


async def test_the_executable(database_url: str, pool: asyncpg.Pool) -> None:
    code, created, err = await _admin_process(database_url, "tenant", "create", "Proc", "--json")
    assert code == 0, err
    assert set(created) == {"tenantId", "apiKey"}
    stored = await pool.fetchval(
        "SELECT key_hash FROM api_keys WHERE tenant = $1", uuid.UUID(created["tenantId"])
    )
    assert stored == hash_api_key(created["apiKey"])


async def test_tenant_key_and_settings_commands(database_url: str, pool: asyncpg.Pool) -> None:
    code, created, _ = await _admin(database_url, "tenant", "create", "Acme", "--json")
    assert code == 0 and set(created) == {"tenantId", "apiKey"}
    tenant = uuid.UUID(created["tenantId"])
    key = await pool.fetchrow("SELECT role, key_hash FROM api_keys WHERE tenant = $1", tenant)
    assert key["role"] == "admin" and key["key_hash"] == hash_api_key(created["apiKey"])
    t = str(tenant)

    code, out, _ = await _admin(database_url, "tenant", "suspend", t, "--json")
    assert (code, out) == (0, {"tenantId": t, "suspended": True})
    code, out, _ = await _admin(database_url, "tenant", "resume", t, "--json")
    assert (code, out) == (0, {"tenantId": t, "suspended": False})
    assert await pool.fetchval("SELECT suspended FROM tenants WHERE tenant = $1", tenant) is False

    code, out, _ = await _admin(
        database_url, "key", "create", "--tenant", t, "--role", "read", "--name", "ci", "--json"
    )
    assert code == 0 and set(out) == {"keyId", "apiKey", "role"} and out["role"] == "read"
    code, revoked, _ = await _admin(database_url, "key", "revoke", out["keyId"], "--json")
    assert (code, revoked) == (0, {"keyId": out["keyId"], "revoked": True})
    assert await pool.fetchval(
        "SELECT revoked_at IS NOT NULL FROM api_keys WHERE key_id = $1", uuid.UUID(out["keyId"])
    )

    code, out, _ = await _admin(
        database_url, "secret", "set", "--tenant", t, "CRM", "s3cr3t", "--json"
    )
    assert (code, out) == (0, {"tenantId": t, "name": "CRM"})
    stored = await pool.fetchval(
        "SELECT value_encrypted FROM tenant_secrets WHERE tenant = $1 AND name = 'CRM'", tenant
    )
    assert b"s3cr3t" not in stored and decrypt_secret("k1", stored) == "s3cr3t"

    code, out, _ = await _admin(
        database_url, "quota", "set", "--tenant", t, "--steps", "100", "--json"
    )
    assert (code, out) == (0, {"tenantId": t, "stepQuotaLimit": 100})
    code, out, _ = await _admin(
        database_url, "quota", "set", "--tenant", t, "--steps", "unlimited", "--json"
    )
    assert (code, out) == (0, {"tenantId": t, "stepQuotaLimit": None})
    assert (
        await pool.fetchval("SELECT step_quota_limit FROM tenants WHERE tenant = $1", tenant)
        is None
    )

    code, out, _ = await _admin(
        database_url, "redaction", "set", "--tenant", t, "--pointer", "/customer/ssn",
        "--pointer", "/card", "--key-pattern", "^internal_", "--json",
    )  # fmt: skip
    assert (code, out) == (
        0, {"tenantId": t, "pointers": ["/customer/ssn", "/card"], "keyPatterns": ["^internal_"]}
    )  # fmt: skip
    row = await pool.fetchrow(
        "SELECT redaction_pointers, redaction_key_patterns FROM tenants WHERE tenant = $1", tenant
    )
    assert row["redaction_pointers"] == ["/customer/ssn", "/card"]
    assert row["redaction_key_patterns"] == ["^internal_"]

    code, out, _ = await _admin(
        database_url, "rate", "set", "--tenant", t, "--per-min", "60", "--json"
    )
    assert (code, out) == (0, {"tenantId": t, "runRateLimitPerMin": 60})

    assert await pool.fetchval("SELECT fairness_weight FROM tenants WHERE tenant = $1", tenant) == 1
    code, out, _ = await _admin(
        database_url, "tenant", "set", t, "--fairness-weight", "2.5", "--json"
    )
    assert (code, out) == (0, {"tenantId": t, "fairnessWeight": 2.5})
    assert (
        await pool.fetchval("SELECT fairness_weight FROM tenants WHERE tenant = $1", tenant) == 2.5
    )


async def test_refusals_exit_1_with_a_message(database_url: str) -> None:
    missing = str(uuid.uuid4())
    code, _, err = await _admin(database_url, "tenant", "suspend", missing, "--json")
    assert code == 1 and "not found" in err
    code, _, err = await _admin(
        database_url, "key", "create", "--tenant", missing, "--role", "read"
    )
    assert code == 1 and "not found" in err
    code, created, _ = await _admin(database_url, "tenant", "create", "Beta", "--json")
    t = created["tenantId"]
    code, _, err = await _admin(
        database_url, "redaction", "set", "--tenant", t, "--key-pattern", "(["
    )
    assert code == 1 and "not a valid regex" in err
    code, _, err = await _admin(
        database_url, "redaction", "set", "--tenant", t, "--pointer", "no-slash"
    )
    assert code == 1 and "must start with" in err
    code, _, err = await _admin(
        database_url, "secret", "set", "--tenant", t, "A", "b", env={"STEPWISE_SECRET_KEY": ""}
    )
    assert code == 1 and "STEPWISE_SECRET_KEY" in err
    code, _, err = await _admin(database_url, "key", "create", "--tenant", t, "--role", "owner")
    assert code == 2  # argparse usage error
    # a weight Temporal would clamp (or cannot represent) is refused, not silently changed
    for weight in ("0", "-1", "1e9", "nan", "inf", "0.0001"):
        code, _, err = await _admin(database_url, "tenant", "set", t, "--fairness-weight", weight)
        assert code == 1 and "fairness weight must be a number from 0.001 to 1000" in err, weight
    code, _, err = await _admin(database_url, "tenant", "set", t, "--fairness-weight", "heavy")
    assert code == 2  # argparse usage error
    for priority in ("0", "6", "-3"):
        code, _, err = await _admin(
            database_url, "tenant", "set", t, "--most-urgent-priority", priority
        )
        assert code == 1 and "most urgent priority must be 1..5" in err, priority
    code, _, err = await _admin(database_url, "tenant", "set", t)
    assert code == 1 and "nothing to set" in err
    code, _, err = await _admin(database_url, "tenant", "set", missing, "--fairness-weight", "2")
    assert code == 1 and "not found" in err
    code, text, _ = await _admin(database_url, "tenant", "create", "Gamma")
    assert code == 0 and "apiKey (shown once" in text
