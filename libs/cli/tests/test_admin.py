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
from stepwise_contract.platform.secrets import decrypt_secret

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
    assert key is not None
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
    assert row is not None
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


async def test_secret_set_refuses_a_key_that_cannot_decrypt_the_tenants_secrets(
    database_url: str, pool: asyncpg.Pool
) -> None:
    code, created, _ = await _admin(database_url, "tenant", "create", "Keys", "--json")
    t = created["tenantId"]
    code, _, err = await _admin(database_url, "secret", "set", "--tenant", t, "A", "one")
    assert code == 0, err
    # another key: refused, named, and nothing written
    code, _, err = await _admin(
        database_url, "secret", "set", "--tenant", t, "B", "two", env={"STEPWISE_SECRET_KEY": "k2"}
    )
    assert code == 1 and "cannot decrypt 1 of its 1 secret(s) (A)" in err, err
    assert "nothing was changed" in err and "two" not in err
    names = await pool.fetch("SELECT name FROM tenant_secrets WHERE tenant = $1", uuid.UUID(t))
    assert [r["name"] for r in names] == ["A"]
    # overwriting the only secret with the other key is refused too: the key is not the one the
    # services decrypt this tenant's secrets with
    code, _, err = await _admin(
        database_url, "secret", "set", "--tenant", t, "A", "x", env={"STEPWISE_SECRET_KEY": "k2"}
    )
    assert code == 1
    # the right key works; a tenant without secrets accepts any key (nothing to compare with)
    code, _, err = await _admin(database_url, "secret", "set", "--tenant", t, "B", "two")
    assert code == 0, err
    code, other, _ = await _admin(database_url, "tenant", "create", "Fresh", "--json")
    code, _, err = await _admin(
        database_url, "secret", "set", "--tenant", other["tenantId"], "A", "x",
        env={"STEPWISE_SECRET_KEY": "k2"},
    )  # fmt: skip
    assert code == 0, err


async def test_admin_reads_dev_env_like_the_operator_cli(
    database_url: str, pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """No DATABASE_URL / STEPWISE_SECRET_KEY in the environment: `$STEPWISE_HOME/dev.env`."""
    (tmp_path / "dev.env").write_text(
        f"DATABASE_URL={database_url}\nSTEPWISE_SECRET_KEY='dev key'\n"
    )
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("STEPWISE_") and k != "DATABASE_URL"
    }
    env["STEPWISE_HOME"] = str(tmp_path)

    async def admin(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            STEPWISE, "admin", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate()
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await admin("tenant", "create", "FromDevEnv", "--json")
    assert code == 0, err
    tenant = json.loads(out)["tenantId"]
    code, out, err = await admin("secret", "set", "--tenant", tenant, "CRM", "v", "--json")
    assert code == 0, err
    stored = await pool.fetchval(
        "SELECT value_encrypted FROM tenant_secrets WHERE tenant = $1", uuid.UUID(tenant)
    )
    assert decrypt_secret("dev key", stored) == "v"
