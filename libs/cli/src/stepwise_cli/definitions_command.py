"""`stepwise definitions push FILE`: create or replace a draft, validate it, publish it.

FILE is JSON or YAML: the definition itself, or `{"key": ..., "definition": {...}}`. The draft
replaced is the one named by `--workflow-id`, else the one with the same key (`--key` or the
file's), else the one whose id is the definition's `id`; otherwise a new workflow is created.
Validation issues are printed one per line; errors stop before publishing (exit 1).
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from stepwise_cli.api_client import (
    ApiClient,
    ApiProblem,
    CliError,
    add_api_options,
    issue_line,
    print_json,
    run_api_command,
)

DEFINITIONS = "/api/workflow-definitions"


def load_document(path: Path) -> tuple[dict[str, Any], str | None]:
    """(definition, key from the file) of a JSON or YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None
    try:
        # YAML is a superset of JSON: one parser for .yaml, .yml and anything else
        is_json = path.suffix.lower() == ".json"
        document = json.loads(text) if is_json else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise CliError(f"{path} is not valid JSON/YAML: {exc}") from None
    if not isinstance(document, dict):
        raise CliError(f"{path} must hold a JSON/YAML object (a workflow definition)")
    if isinstance(document.get("definition"), dict):
        key = document.get("key")
        if key is not None and not isinstance(key, str):
            raise CliError(f"{path}: key must be a string")
        return document["definition"], key
    return document, None


async def _by_key(api: ApiClient, key: str) -> str | None:
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        page = await api.get(DEFINITIONS, params)
        for definition in page["definitions"]:
            if definition.get("key") == key:
                return str(definition["workflow_id"])
        cursor = page.get("nextCursor")
        if not cursor:
            return None


async def _existing(api: ApiClient, definition: dict[str, Any]) -> str | None:
    raw = definition.get("id")
    try:
        workflow_id = str(uuid.UUID(str(raw)))
    except ValueError:
        return None
    try:
        await api.get(f"{DEFINITIONS}/{workflow_id}")
    except ApiProblem as exc:
        if exc.status == 404:
            return None
        raise
    return workflow_id


async def push(args: argparse.Namespace, api: ApiClient) -> int:
    definition, file_key = load_document(Path(args.file))
    key = args.key or file_key
    target = args.workflow_id
    if target is None and key:
        target = await _by_key(api, key)
    if target is None and not key:
        target = await _existing(api, definition)
    if target is not None:
        saved = await api.put(f"{DEFINITIONS}/{target}", {"definition": definition})
        created = False
    else:
        body: dict[str, Any] = {"definition": definition}
        if key:
            body["key"] = key
        saved = await api.post(DEFINITIONS, body)
        created = True
    workflow_id = saved["workflowId"]
    validation = saved.get("validation") or {}
    result: dict[str, Any] = {
        "workflowId": workflow_id,
        "created": created,
        "draftVersion": saved.get("draftVersion"),
        "validation": validation,
        "version": None,
    }
    ok = validation.get("status") != "error"
    if ok and not args.no_publish:
        body = {"version": args.version} if args.version is not None else {}
        try:
            published = await api.post(f"{DEFINITIONS}/{workflow_id}/publish", body)
        except ApiProblem as exc:
            if not args.json:
                print(_saved_line(definition, result))
            raise exc from None
        result["version"] = published["version"]
        result["validation"] = published.get("validation") or validation
    if args.json:
        print_json(result)
    else:
        print(_saved_line(definition, result))
        print(_validation_text(result["validation"]))
        if result["version"] is not None:
            print(f"published version {result['version']}")
        elif not ok:
            print("not published: fix the errors above and push again")
    return 0 if ok else 1


def _saved_line(definition: dict[str, Any], result: dict[str, Any]) -> str:
    verb = "created" if result["created"] else "replaced the draft of"
    name = definition.get("name") or "(no name)"
    return f"{verb} workflow {result['workflowId']} {name!r} (draft {result['draftVersion']})"


def _validation_text(validation: dict[str, Any]) -> str:
    errors = validation.get("errors") or []
    warnings = validation.get("warnings") or []
    lines = [f"validation: {validation.get('status', 'unknown')}"]
    lines += [f"  ✗ {issue_line(item)}" for item in errors]
    lines += [f"  ⚠ {issue_line(item)}" for item in warnings]
    return "\n".join(lines)


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a workflow id (a uuid)") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    definitions = subparsers.add_parser(
        "definitions", help="push workflow definitions (over the API)"
    )
    verbs = definitions.add_subparsers(dest="definitions_command", required=True, metavar="COMMAND")
    parser = verbs.add_parser(
        "push",
        help="create or replace a draft from a JSON/YAML file, validate and publish it",
        description=(__doc__ or "").split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_api_options(parser)
    parser.add_argument("file", metavar="FILE", help="a .json or .yaml definition")
    parser.add_argument("--workflow-id", type=_uuid, help="replace this workflow's draft")
    parser.add_argument("--key", help="the workflow's key (replace the draft with this key)")
    parser.add_argument("--version", type=int, help="publish as this version (default next)")
    parser.add_argument(
        "--no-publish", action="store_true", help="save and validate the draft only"
    )
    parser.set_defaults(func=lambda args: run_api_command(args, push))
