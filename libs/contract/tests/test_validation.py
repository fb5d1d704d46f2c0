"""Publish validation codes (SPEC §3)."""

from __future__ import annotations

from typing import Any

import pytest
from stepwise_contract.actions import builtin_catalog
from stepwise_contract.validation import parse_assign_path, validate_definition

CATALOG = builtin_catalog()


def codes(raw: Any, **kw: Any) -> list[str]:
    result, _ = validate_definition(raw, catalog=CATALOG, **kw)
    return [e.code for e in result.errors]


def echo(step_id: str, **config: Any) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {"actionId": "core.echo", "version": 1, "inputMapping": {"value": 1}, **config},
    }


def test_valid() -> None:
    result, definition = validate_definition(
        {"name": "ok", "steps": [echo("a", saveAs="out"), {"id": "r", "type": "control.return"}]},
        catalog=CATALOG,
    )
    assert result.status == "valid" and definition is not None


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("nope", "INVALID_WORKFLOW_DEFINITION"),
        ({"name": "x", "steps": [echo("a"), echo("a")]}, "DUPLICATE_STEP_ID"),
        (
            {"name": "x", "steps": [echo("a", inputMapping={"value": {"$expr": "$now()"}})]},
            "INVALID_EXPR",
        ),
        (
            {
                "name": "x",
                "steps": [echo("a", inputMapping={"value": {"$expr": '$match("aa", /(a)\\1/)'}})],
            },
            "INVALID_EXPR",
        ),
        (
            {
                "name": "x",
                "steps": [echo("a", inputMapping={"value": {"$expr": "1 + " * 5000 + "1"}})],
            },
            "INVALID_EXPR",
        ),
        ({"name": "x", "steps": [{"id": "a", "type": "bogus"}]}, "UNKNOWN_NODE_TYPE"),
        (
            {"name": "x", "steps": [{"id": "a", "type": "state.set", "config": {"state": 1}}]},
            "INVALID_CONFIG",
        ),
        (
            {
                "name": "x",
                "steps": [{"id": "a", "type": "action.call", "config": {"actionId": "x.y"}}],
            },
            "UNKNOWN_ACTION",
        ),
        ({"name": "x", "steps": [echo("a", inputMapping={"nope": 1})]}, "INVALID_ACTION_INPUT"),
        ({"name": "x", "steps": [echo("a", saveAs="vars.__proto__")]}, "INVALID_ASSIGN_PATH"),
        ({"name": "x", "unknownKey": 1, "steps": []}, "INVALID_WORKFLOW_DEFINITION"),
    ],
)
def test_error_codes(raw: Any, code: str) -> None:
    assert code in codes(raw)


def test_database_backed_codes() -> None:
    raw = {
        "name": "x",
        "payloadSchemaRef": "payload.Missing.v1",
        "steps": [
            echo("a", inputMapping={"value": {"$secret": "NOPE"}}),
            {"id": "c", "type": "control.callWorkflow", "workflowId": "missing"},
        ],
    }
    found = codes(raw, known_schemas=set(), known_workflows=set(), known_secrets=set())
    assert {"UNKNOWN_PAYLOAD_SCHEMA", "UNKNOWN_CHILD_WORKFLOW", "SECRET_NOT_FOUND"} <= set(found)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("payload.x.y", ("payload", ["x", "y"])),
        ("vars.x", ("vars", ["x"])),
        ("x", ("vars", ["x"])),
        ("/payload/x", ("payload", ["x"])),
        ("meta.state", ("meta", ["state"])),
        ("local.i", ("local", ["i"])),
    ],
)
def test_assign_paths(path: str, expected: tuple[str, list[str]]) -> None:
    assert parse_assign_path(path) == expected


@pytest.mark.parametrize(
    "path", ["__proto__", "vars.constructor", "payload.prototype.x", "", "/other/x", "a..b"]
)
def test_unsafe_assign_paths(path: str) -> None:
    with pytest.raises(ValueError):
        parse_assign_path(path)


def test_secret_outside_an_action_input_mapping_is_a_warning() -> None:
    ref = {"$secret": "TOKEN"}
    raw = {
        "name": "x",
        "trigger": {"type": "event", "eventName": "E", "payloadMapping": {"t": ref}},
        "steps": [
            echo("a", inputMapping={"value": {"nested": [ref]}}),
            {"id": "b", "type": "transform.assign", "config": {"assign": {"vars.t": ref}}},
        ],
    }
    result, _ = validate_definition(raw, catalog=builtin_catalog())
    assert not result.errors
    warned = [(w.code, w.step_path) for w in result.warnings]
    assert ("SECRET_NOT_RESOLVED_HERE", "root.trigger") in warned
    assert ("SECRET_NOT_RESOLVED_HERE", "root.steps[1]") in warned
    assert all(path != "root.steps[0]" for _code, path in warned), "inputMapping resolves"
