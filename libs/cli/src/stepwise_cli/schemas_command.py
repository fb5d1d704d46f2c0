"""`stepwise schemas put|list|show`: the JSON Schemas a definition's `payloadSchemaRef` names.

`put REF JSON|@FILE` registers or replaces the schema `REF` (e.g. `payload.Order.v1`); a launch of
a workflow with that `payloadSchemaRef` is refused when its payload does not match.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Final
from urllib.parse import quote

from stepwise_cli.api_client import (
    ApiClient,
    CliError,
    api_command,
    json_argument,
    print_json,
)
from stepwise_cli.tables import short_time, table

SCHEMAS: Final = "/api/workflow/schemas"


def _ref(value: str) -> str:
    if not value.strip() or "/" in value:
        raise argparse.ArgumentTypeError(f"{value!r} is not a schema ref (e.g. payload.Order.v1)")
    return value


def _path(ref: str) -> str:
    return f"{SCHEMAS}/{quote(ref, safe='')}"


async def schemas_put(args: argparse.Namespace, api: ApiClient) -> int:
    if not isinstance(args.schema, dict):
        raise CliError("the schema must be a JSON object (a JSON Schema)")
    answer = await api.put(_path(args.ref), args.schema)
    if args.json:
        print_json(answer)
    else:
        print(f"saved schema {args.ref}")
    return 0


async def schemas_list(args: argparse.Namespace, api: ApiClient) -> int:
    params: dict[str, Any] = {"limit": 500}
    if args.cursor:
        params["cursor"] = args.cursor
    page = await api.get(SCHEMAS, params)
    if args.json:
        print_json(page)
        return 0
    print(
        table(
            ["SCHEMA REF", "BUILT IN", "CREATED (UTC)"],
            [
                [
                    s["schema_ref"],
                    "yes" if s.get("builtin") else "",
                    short_time(s.get("created_at")),
                ]
                for s in page["schemas"]
            ],
        )
    )
    if page.get("nextCursor"):
        print(f"\nmore schemas: --cursor {page['nextCursor']}")
    return 0


async def schemas_show(args: argparse.Namespace, api: ApiClient) -> int:
    schema = await api.get(_path(args.ref))
    if args.json:
        print_json(schema)
    else:
        print(json.dumps(schema.get("schema_json"), indent=2, ensure_ascii=False))
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    schemas = subparsers.add_parser("schemas", help="register, list and show payload schemas")
    verbs = schemas.add_subparsers(dest="schemas_command", required=True, metavar="COMMAND")

    put = api_command(verbs, "put", "register or replace a JSON Schema (publish key)", schemas_put)
    put.add_argument("ref", type=_ref, metavar="REF")
    put.add_argument("schema", type=json_argument, metavar="JSON|@FILE")
    listing = api_command(verbs, "list", "list the tenant's and the built-in schemas", schemas_list)
    listing.add_argument("--cursor", help="the next page")
    show = api_command(verbs, "show", "print one schema", schemas_show)
    show.add_argument("ref", type=_ref, metavar="REF")
