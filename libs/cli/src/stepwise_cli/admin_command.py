"""`stepwise admin …`: tenants, API keys, secrets, quotas, redaction settings, and
adoption of a reference database (`adopt_command`).

Each subcommand parses, calls one operation of `admin_operations` and prints. The command
reads `DATABASE_URL` (and `STEPWISE_SECRET_KEY` for secrets) from the environment, else from the
`dev.env` that `make run` wrote in `$STEPWISE_HOME` — like the operator commands. `--json` prints
exactly the documented object; errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import asyncpg
from stepwise_contract.enums import Role
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.settings import DEFAULT_DATABASE_URL
from stepwise_contract.priority import (
    FAIRNESS_WEIGHT_MAX,
    FAIRNESS_WEIGHT_MIN,
)

from stepwise_cli import adopt_command
from stepwise_cli.admin_operations import (
    AdminError,
    create_key,
    create_tenant,
    revoke_key,
    set_fairness_weight,
    set_most_urgent_priority,
    set_quota,
    set_rate_limit,
    set_redaction,
    set_secret,
    set_suspended,
)
from stepwise_cli.stepwise_home import read_dev_env


def _uuid(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a uuid") from None


def _limit(value: str) -> int | None:
    if value == "unlimited":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r}: use a number or 'unlimited'") from None


Action = Callable[[argparse.Namespace, asyncpg.Pool, Mapping[str, str]], Awaitable[dict[str, Any]]]


async def _tenant_create(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    tenant, key = await create_tenant(pool, args.name, args.api_key, args.tenant_id)
    return {"tenantId": str(tenant), "apiKey": key}


def _tenant_suspend(suspended: bool) -> Action:
    async def action(
        args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
    ) -> dict[str, Any]:
        await set_suspended(pool, args.tenant, suspended)
        return {"tenantId": str(args.tenant), "suspended": suspended}

    return action


async def _key_create(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    key_id, key = await create_key(pool, args.tenant, Role(args.role), args.name or "")
    return {"keyId": str(key_id), "apiKey": key, "role": args.role}


async def _key_revoke(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    await revoke_key(pool, args.key_id)
    return {"keyId": str(args.key_id), "revoked": True}


async def _secret_set(
    args: argparse.Namespace, pool: asyncpg.Pool, env: Mapping[str, str]
) -> dict[str, Any]:
    await set_secret(pool, env.get("STEPWISE_SECRET_KEY", ""), args.tenant, args.name, args.value)
    return {"tenantId": str(args.tenant), "name": args.name}


async def _quota_set(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    await set_quota(pool, args.tenant, args.steps)
    return {"tenantId": str(args.tenant), "stepQuotaLimit": args.steps}


async def _rate_set(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    await set_rate_limit(pool, args.tenant, args.per_min)
    return {"tenantId": str(args.tenant), "runRateLimitPerMin": args.per_min}


async def _tenant_set(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    if args.fairness_weight is None and args.most_urgent_priority is None:
        raise AdminError("nothing to set: give --fairness-weight and/or --most-urgent-priority")
    result: dict[str, Any] = {"tenantId": str(args.tenant)}
    if args.fairness_weight is not None:
        await set_fairness_weight(pool, args.tenant, args.fairness_weight)
        result["fairnessWeight"] = args.fairness_weight
    if args.most_urgent_priority is not None:
        await set_most_urgent_priority(pool, args.tenant, args.most_urgent_priority)
        result["mostUrgentPriority"] = args.most_urgent_priority
    return result


def _weight(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None


async def _redaction_set(
    args: argparse.Namespace, pool: asyncpg.Pool, _env: Mapping[str, str]
) -> dict[str, Any]:
    pointers, patterns = list(args.pointer or []), list(args.key_pattern or [])
    await set_redaction(pool, args.tenant, pointers, patterns)
    return {"tenantId": str(args.tenant), "pointers": pointers, "keyPatterns": patterns}


def _human(result: Mapping[str, Any]) -> str:
    lines = [f"{key}: {value}" for key, value in result.items() if key != "apiKey"]
    if "apiKey" in result:
        lines.append(f"apiKey (shown once, store it now): {result['apiKey']}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    # the environment wins; `make run`'s dev.env fills in what it does not set
    environ = {**read_dev_env(os.environ), **{k: v for k, v in os.environ.items() if v}}
    action: Action = args.admin_action

    async def go() -> dict[str, Any]:
        pool = await create_pool(
            environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL, min_size=1, max_size=2
        )
        try:
            return await action(args, pool, environ)
        finally:
            await pool.close()

    try:
        result = asyncio.run(go())
    except AdminError as exc:
        print(f"stepwise admin: {exc}", file=sys.stderr)
        return 1
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"stepwise admin: database error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result) if args.json else _human(result))
    return 0


def _leaf(
    group: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    help_text: str,
    action: Action,
) -> argparse.ArgumentParser:
    parser = group.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run, admin_action=action)
    return parser


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    admin = subparsers.add_parser(
        "admin",
        help="administer tenants, API keys, secrets, quotas and redaction (reads DATABASE_URL)",
    )
    objects = admin.add_subparsers(dest="admin_object", required=True, metavar="OBJECT")
    adopt_command.register(objects)

    tenant = objects.add_parser("tenant", help="create, suspend, resume or configure a tenant")
    tenant_cmds = tenant.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    create = _leaf(tenant_cmds, "create", "create a tenant and its admin API key", _tenant_create)
    create.add_argument("name")
    create.add_argument("--api-key", help="use this admin key instead of a generated one")
    create.add_argument("--tenant-id", type=_uuid, help="use this tenant id")
    for verb, suspended in (("suspend", True), ("resume", False)):
        leaf = _leaf(
            tenant_cmds,
            verb,
            f"{verb} a tenant (a suspended tenant may only read)",
            _tenant_suspend(suspended),
        )
        leaf.add_argument("tenant", type=_uuid)
    tenant_set = _leaf(tenant_cmds, "set", "change a tenant's settings", _tenant_set)
    tenant_set.add_argument("tenant", type=_uuid)
    tenant_set.add_argument(
        "--fairness-weight",
        type=_weight,
        metavar="W",
        help=f"the tenant's share of a backlogged task queue (default 1; {FAIRNESS_WEIGHT_MIN:g}"
        f" to {FAIRNESS_WEIGHT_MAX:g})",
    )
    tenant_set.add_argument(
        "--most-urgent-priority",
        type=int,
        metavar="P",
        help="cap the tenant's run priority: runs start no more urgent than P (1 = uncapped … 5)",
    )

    key = objects.add_parser("key", help="create or revoke API keys")
    key_cmds = key.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    key_create = _leaf(key_cmds, "create", "create an API key (shown once)", _key_create)
    key_create.add_argument("--tenant", type=_uuid, required=True)
    key_create.add_argument("--role", choices=[r.value for r in Role], required=True)
    key_create.add_argument("--name", default="")
    key_revoke = _leaf(key_cmds, "revoke", "revoke an API key", _key_revoke)
    key_revoke.add_argument("key_id", type=_uuid)

    secret = objects.add_parser("secret", help="tenant secrets for $secret references")
    secret_cmds = secret.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    secret_set = _leaf(
        secret_cmds, "set", "set a secret (encrypted with STEPWISE_SECRET_KEY)", _secret_set
    )
    secret_set.add_argument("--tenant", type=_uuid, required=True)
    secret_set.add_argument("name")
    secret_set.add_argument("value")

    quota = objects.add_parser("quota", help="the tenant's step quota per period")
    quota_cmds = quota.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    quota_set = _leaf(quota_cmds, "set", "set the step quota (N or unlimited)", _quota_set)
    quota_set.add_argument("--tenant", type=_uuid, required=True)
    quota_set.add_argument("--steps", type=_limit, required=True, metavar="N|unlimited")

    rate = objects.add_parser("rate", help="the tenant's launch rate limit")
    rate_cmds = rate.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")
    rate_set = _leaf(rate_cmds, "set", "set launches per minute (N or unlimited)", _rate_set)
    rate_set.add_argument("--tenant", type=_uuid, required=True)
    rate_set.add_argument("--per-min", type=_limit, required=True, metavar="N|unlimited")

    redaction = objects.add_parser("redaction", help="the tenant's redaction settings")
    redaction_cmds = redaction.add_subparsers(
        dest="admin_command", required=True, metavar="COMMAND"
    )
    redaction_set = _leaf(
        redaction_cmds,
        "set",
        "replace the tenant's redaction JSON pointers and key patterns",
        _redaction_set,
    )
    redaction_set.add_argument("--tenant", type=_uuid, required=True)
    redaction_set.add_argument("--pointer", action="append", metavar="P")
    redaction_set.add_argument("--key-pattern", action="append", metavar="RE")
