"""`stepwise definitions push|list|show|validate|publish|pause|resume`: workflow definitions.

`push FILE` creates or replaces a draft, validates it and publishes it. FILE is JSON or YAML:
the definition itself, or `{"key": ..., "definition": {...}}`. The draft
replaced is the one named by `--workflow-id`, else the one with the same key (`--key` or the
file's), else the one whose id is the definition's `id`; otherwise a new workflow is created.
Validation issues are printed one per line; errors stop before publishing (exit 1).

The other commands name a workflow by its id, key or name. `validate` and `publish` act on the
stored draft (exit 1 when it has errors); `pause`/`resume` stop and allow new runs (admin key).
"""

from __future__ import annotations

import argparse
import json
import uuid
from pathlib import Path
from typing import Any

import yaml

from stepwise_cli.api_client import (
    PAGE_LIMIT,
    ApiClient,
    ApiProblem,
    CliError,
    add_api_options,
    add_limit_option,
    api_command,
    issue_line,
    print_json,
    run_api_command,
)
from stepwise_cli.tables import short_time, table

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


async def resolve_workflow(api: ApiClient, ref: str) -> str:
    """A workflow id from an id, a key or a name (keys and names are looked up in the list)."""
    try:
        return str(uuid.UUID(ref))
    except ValueError:
        pass
    matches: dict[str, str] = {}
    cursor = None
    while True:
        page = await api.get(
            DEFINITIONS, {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
        )
        for definition in page["definitions"]:
            if ref in (definition.get("key"), definition.get("name")):
                matches[str(definition["workflow_id"])] = str(definition.get("name"))
        cursor = page.get("nextCursor")
        if not cursor:
            break
    if not matches:
        raise CliError(f"no workflow with id, key or name {ref!r}")
    if len(matches) > 1:
        listed = ", ".join(f"{wid} ({name})" for wid, name in matches.items())
        raise CliError(f"{ref!r} names several workflows: {listed}; pass the workflow id")
    return next(iter(matches))


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


async def definitions_list(args: argparse.Namespace, api: ApiClient) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.cursor:
        params["cursor"] = args.cursor
    page = await api.get(DEFINITIONS, params)
    if args.json:
        print_json(page)
        return 0
    rows = page["definitions"]
    if not rows:
        print("no workflow definitions")
        return 0
    print(
        table(
            ["WORKFLOW ID", "KEY", "NAME", "STATUS", "LATEST", "DRAFT", "PAUSED", "TRIGGER"],
            [
                [
                    d["workflow_id"],
                    d.get("key"),
                    d.get("name"),
                    d.get("status"),
                    d.get("latest_published_version"),
                    d.get("draft_version"),
                    "yes" if d.get("is_paused") else "",
                    d.get("trigger_event_name"),
                ]
                for d in rows
            ],
        )
    )
    if page.get("nextCursor"):
        print(f"\nmore definitions: --cursor {page['nextCursor']}")
    return 0


async def definitions_show(args: argparse.Namespace, api: ApiClient) -> int:
    workflow_id = await resolve_workflow(api, args.workflow)
    detail = await api.get(f"{DEFINITIONS}/{workflow_id}")
    if args.json:
        print_json(detail)
        return 0
    lines = [f"workflow {detail['workflow_id']}  {detail.get('name')!r}"]
    for label, field in (
        ("key", "key"),
        ("status", "status"),
        ("latest", "latest_published_version"),
        ("draft", "draft_version"),
        ("paused", "is_paused"),
        ("concurrency", "concurrency_limit"),
        ("schema", "payload_schema_ref"),
        ("trigger", "trigger_event_name"),
        ("validation", "validation_status"),
    ):
        lines.append(f"  {label:<12} {'-' if detail.get(field) is None else detail[field]}")
    versions = detail.get("versions") or []
    if versions:
        published = ", ".join(
            f"v{v['version']} {short_time(v.get('published_at'))}" for v in versions
        )
        lines.append(f"  versions     {published}")
    print("\n".join(lines))
    issues = {
        "errors": detail.get("validation_errors"),
        "warnings": detail.get("validation_warnings"),
    }
    if issues["errors"] or issues["warnings"]:
        print(_validation_text({"status": detail.get("validation_status"), **issues}))
    print("draft definition:")
    print(json.dumps(detail.get("draft_definition"), indent=2, ensure_ascii=False))
    return 0


async def definitions_validate(args: argparse.Namespace, api: ApiClient) -> int:
    workflow_id = await resolve_workflow(api, args.workflow)
    result = await api.post(f"{DEFINITIONS}/{workflow_id}/validate")
    if args.json:
        print_json(result)
    else:
        print(_validation_text(result))
    return 1 if result.get("status") == "error" else 0


async def definitions_publish(args: argparse.Namespace, api: ApiClient) -> int:
    workflow_id = await resolve_workflow(api, args.workflow)
    body = {"version": args.version} if args.version is not None else {}
    published = await api.post(f"{DEFINITIONS}/{workflow_id}/publish", body)
    if args.json:
        print_json({"workflowId": workflow_id, **published})
    else:
        print(f"published workflow {workflow_id} version {published['version']}")
        if published.get("validation"):
            print(_validation_text(published["validation"]))
    return 0


def _set_paused(paused: bool) -> Any:
    async def command(args: argparse.Namespace, api: ApiClient) -> int:
        workflow_id = await resolve_workflow(api, args.workflow)
        await api.patch(f"{DEFINITIONS}/{workflow_id}", {"isPaused": paused})
        if args.json:
            print_json({"workflowId": workflow_id, "isPaused": paused})
        else:
            verb = "paused: launches are refused" if paused else "resumed: launches are accepted"
            print(f"workflow {workflow_id} {verb}")
        return 0

    return command


def _uuid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a workflow id (a uuid)") from None


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    definitions = subparsers.add_parser(
        "definitions", help="push, list, show, validate, publish, pause workflow definitions"
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

    listing = api_command(verbs, "list", "list workflow definitions", definitions_list)
    add_limit_option(listing)
    listing.add_argument("--cursor", help="the next page (printed under a full page)")
    for name, help_text, command in (
        ("show", "a definition: status, versions, validation and its draft", definitions_show),
        ("validate", "validate the stored draft (exit 1 on errors)", definitions_validate),
        ("publish", "publish the stored draft (publish key)", definitions_publish),
        ("pause", "refuse new runs of the workflow (admin key)", _set_paused(True)),
        ("resume", "accept new runs of the workflow again (admin key)", _set_paused(False)),
    ):
        sub = api_command(verbs, name, help_text, command)
        sub.add_argument("workflow", metavar="WORKFLOW", help="the workflow's id, key or name")
        if name == "publish":
            sub.add_argument("--version", type=int, help="publish as this version (default next)")
