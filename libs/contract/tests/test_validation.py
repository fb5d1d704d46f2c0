"""Publish validation codes (SPEC §3)."""

from __future__ import annotations

from typing import Any

import msgspec
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


def _wait_on(name: str) -> dict[str, Any]:
    return {
        "name": "x",
        "steps": [{"id": "w", "type": "event.wait", "config": {"eventName": name}}],
    }


@pytest.mark.parametrize(
    "name", ["bad name", "", "orders.*", "orders.>", "a..b", ".a", "a.", "ä", "x" * 201, "a\nb"]
)
def test_event_wait_and_trigger_names_follow_the_event_publish_rule(name: str) -> None:
    result, _ = validate_definition(_wait_on(name), catalog=CATALOG)
    [item] = result.errors
    assert (item.code, item.step_path, item.step_id) == ("INVALID_EVENT_NAME", "root.steps[0]", "w")
    trigger = {"name": "x", "trigger": {"type": "event", "eventName": name}, "steps": []}
    result, _ = validate_definition(trigger, catalog=CATALOG)
    assert [(e.code, e.step_path) for e in result.errors] == [
        ("INVALID_EVENT_NAME", "root.trigger")
    ]


@pytest.mark.parametrize("name", ["ORDER_PAID", "orders.paid", "a:b-c_d.e", "x" * 200])
def test_event_names_the_api_accepts_are_valid(name: str) -> None:
    assert codes(_wait_on(name)) == []


def test_every_item_carries_a_step_path_null_for_definition_level_defects() -> None:
    raw = {
        "name": "x",
        "payloadSchemaRef": "payload.Missing.v1",
        "steps": [echo("a", inputMapping={"value": {"$secret": "NOPE"}}), echo("a")],
    }
    result, _ = validate_definition(raw, catalog=CATALOG, known_schemas=set(), known_secrets=set())
    encoded = [msgspec.to_builtins(item) for item in result.errors]
    assert all("stepPath" in item for item in encoded), encoded
    by_code = {item["code"]: item for item in encoded}
    assert by_code["UNKNOWN_PAYLOAD_SCHEMA"]["stepPath"] is None
    assert by_code["SECRET_NOT_FOUND"]["stepPath"] is None
    assert by_code["DUPLICATE_STEP_ID"]["stepPath"] == "root.steps[1]"
    raw_bad: object
    for raw_bad in ("nope", {"name": "x", "unknownKey": 1, "steps": []}, {"steps": []}):
        result, _ = validate_definition(raw_bad, catalog=CATALOG)
        assert [msgspec.to_builtins(e)["stepPath"] for e in result.errors] == [None]


def _assigning(assign: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "x",
        "steps": [
            {"id": "a", "type": "transform.assign", "config": {"assign": assign}},
            {"id": "w", "type": "event.wait", "config": {"eventName": "E", "assign": assign}},
        ],
    }


def test_assign_order_warning_only_where_definitions_are_stored_as_jsonb() -> None:
    reordered = _assigning({"vars.total": {"$expr": "1"}, "vars.n": {"$expr": "vars.total"}})
    result, _ = validate_definition(reordered, catalog=CATALOG)
    assert result.status == "valid"
    result, _ = validate_definition(reordered, catalog=CATALOG, keeps_key_order=False)
    assert not result.errors and result.status == "warning"
    warned = [(w.code, w.step_path, w.step_id) for w in result.warnings]
    assert warned == [
        ("ASSIGN_ORDER_NOT_KEPT", "root.steps[0]", "a"),
        ("ASSIGN_ORDER_NOT_KEPT", "root.steps[1]", "w"),
    ]
    assert "vars.n, vars.total" in result.warnings[0].message
    # written in the order jsonb keeps: nothing to warn about
    kept = _assigning({"vars.n": {"$expr": "1"}, "vars.total": {"$expr": "vars.n"}})
    result, _ = validate_definition(kept, catalog=CATALOG, keeps_key_order=False)
    assert result.status == "valid"
