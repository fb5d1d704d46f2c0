"""transform.*@1: every helper through `invoke`, so input and output schemas are exercised too."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from stepwise_worker.actions.base import ActionContext, ActionFailure, ActionSettings, invoke
from stepwise_worker.actions.registry import ActionRegistry

REGISTRY = ActionRegistry.default()


def _ctx(**settings: Any) -> ActionContext:
    return ActionContext(
        tenant_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        step_path="root.steps[0]",
        attempt=1,
        idempotency_key="k",
        settings=ActionSettings(**settings),
    )


async def _call(action_id: str, payload: dict[str, Any], **settings: Any) -> dict[str, Any]:
    action = REGISTRY.get(action_id, 1)
    assert action is not None
    assert action.declaration.local is True
    return await invoke(action, payload, _ctx(**settings))


async def _fails(action_id: str, payload: dict[str, Any], **settings: Any) -> ActionFailure:
    with pytest.raises(ActionFailure) as info:
        await _call(action_id, payload, **settings)
    return info.value


async def test_pick_top_level_and_nested_fields() -> None:
    value = {"id": 7, "name": "Ada", "address": {"city": "Paris", "zip": "75001"}, "tags": ["x"]}
    out = await _call(
        "transform.pick", {"value": value, "fields": ["id", "address.city", "missing", "tags.0"]}
    )
    assert out == {"value": {"id": 7, "address": {"city": "Paris"}}}
    # a whole object and one of its fields: the whole object wins, in either order
    both = {"value": value, "fields": ["address.zip", "address"]}
    assert (await _call("transform.pick", both))["value"] == {"address": value["address"]}
    both = {"value": value, "fields": ["address", "address.zip"]}
    assert (await _call("transform.pick", both))["value"] == {"address": value["address"]}
    assert value["address"] == {"city": "Paris", "zip": "75001"}  # input untouched


async def test_rename_fields() -> None:
    out = await _call(
        "transform.rename",
        {"value": {"a": 1, "b": 2, "c": 3}, "mapping": {"a": "alpha", "b": "c", "zz": "never"}},
    )
    assert out == {"value": {"alpha": 1, "c": 2}}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"op": "upper", "value": "Straße"}, "STRASSE"),
        ({"op": "lower", "value": "ÀBC"}, "àbc"),
        ({"op": "trim", "value": "  hi \n"}, "hi"),
        ({"op": "trim", "value": "--hi--", "chars": "-"}, "hi"),
        ({"op": "replace", "value": "a.b.c", "search": ".", "replacement": "/"}, "a/b/c"),
        ({"op": "replace", "value": "a.b.c", "search": ".", "replacement": "", "count": 1}, "ab.c"),
        ({"op": "split", "value": "a,b,,c", "separator": ","}, ["a", "b", "", "c"]),
        ({"op": "split", "value": "a,b,c", "separator": ",", "maxSplits": 1}, ["a", "b,c"]),
        ({"op": "split", "value": " a  b\tc "}, ["a", "b", "c"]),
        ({"op": "join", "value": ["a", 1, 2.0, 2.5, True], "separator": "-"}, "a-1-2-2.5-true"),
        ({"op": "join", "value": []}, ""),
    ],
)
async def test_text_ops(payload: dict[str, Any], expected: Any) -> None:
    assert await _call("transform.text", payload) == {"value": expected}


@pytest.mark.parametrize(
    "payload",
    [
        {"op": "upper", "value": 5},
        {"op": "join", "value": "abc"},
        {"op": "join", "value": [{"a": 1}]},
        {"op": "replace", "value": "abc", "search": "a"},
        {"op": "split", "value": "abc", "separator": ""},
        {"op": "reverse", "value": "abc"},
    ],
)
async def test_text_refuses_inputs_its_op_cannot_use(payload: dict[str, Any]) -> None:
    err = await _fails("transform.text", payload)
    assert (err.category, err.code) == ("ValidationError", "INVALID_ACTION_INPUT")


async def test_regex_match() -> None:
    out = await _call(
        "transform.regex",
        {"op": "match", "pattern": r"(?P<num>\d+)-(\w)?", "value": "ticket 42- open"},
    )
    assert out == {
        "matched": True,
        "match": "42-",
        "index": 7,
        "groups": ["42", None],
        "namedGroups": {"num": "42"},
    }
    miss = await _call("transform.regex", {"op": "match", "pattern": "^x", "value": "abc"})
    assert miss == {"matched": False, "match": None, "index": None, "groups": [], "namedGroups": {}}
    flags = {"op": "match", "pattern": "^b.c$", "value": "a\nB\nC", "flags": "ims"}
    assert (await _call("transform.regex", flags))["match"] == "B\nC"


async def test_regex_extract_all_or_a_count() -> None:
    payload = {"op": "extract", "pattern": r"#(\d+)", "value": "#1, #22 and #333"}
    out = await _call("transform.regex", payload)
    assert [(m["match"], m["groups"], m["index"]) for m in out["matches"]] == [
        ("#1", ["1"], 0),
        ("#22", ["22"], 4),
        ("#333", ["333"], 12),
    ]
    two = await _call("transform.regex", {**payload, "count": 2})
    assert [m["match"] for m in two["matches"]] == ["#1", "#22"]


async def test_regex_replace() -> None:
    payload = {
        "op": "replace",
        "pattern": r"(?P<word>\w+)@(\w+)",
        "value": "a@b c@d",
        "replacement": r"\2 at \g<word>",
    }
    assert await _call("transform.regex", payload) == {"value": "b at a d at c", "replacements": 2}
    once = await _call("transform.regex", {**payload, "count": 1})
    assert once == {"value": "b at a c@d", "replacements": 1}


async def test_regex_bad_pattern_or_replacement_is_a_validation_error() -> None:
    err = await _fails("transform.regex", {"op": "match", "pattern": "(unclosed", "value": "x"})
    assert (err.category, err.code) == ("ValidationError", "INVALID_REGEX")
    err = await _fails(
        "transform.regex", {"op": "replace", "pattern": "a", "value": "a", "replacement": r"\9"}
    )
    assert (err.category, err.code) == ("ValidationError", "INVALID_REGEX")


async def test_regex_input_caps() -> None:
    err = await _fails("transform.regex", {"op": "match", "pattern": "a", "value": "a" * 100_001})
    assert err.code == "INVALID_ACTION_INPUT"
    err = await _fails("transform.regex", {"op": "match", "pattern": "a" * 1001, "value": "a"})
    assert err.code == "INVALID_ACTION_INPUT"
    err = await _fails(
        "transform.regex", {"op": "match", "pattern": "a", "value": "a", "flags": "x"}
    )
    assert err.code == "INVALID_ACTION_INPUT"


async def test_catastrophic_regex_is_linear_and_lookaround_is_refused() -> None:
    # exponential backtracking: minutes with `re` on this 41-character input; RE2 is linear
    started = time.monotonic()
    result = await _call(
        "transform.regex", {"op": "match", "pattern": "^(a|aa)+$", "value": "a" * 40 + "!"}
    )
    assert result["matched"] is False
    big = await _call(
        "transform.regex", {"op": "match", "pattern": "^(a|aa)+$", "value": "a" * 99_999 + "!"}
    )
    assert big["matched"] is False
    assert time.monotonic() - started < 5.0
    for pattern in (r"(a)\1", "a(?=b)", "(?<!x)a"):
        err = await _fails("transform.regex", {"op": "match", "pattern": pattern, "value": "aa"})
        assert (err.category, err.code, err.retryable) == (
            "ValidationError",
            "INVALID_REGEX",
            False,
        )


async def test_regex_flags_groups_and_replacement() -> None:
    found = await _call(
        "transform.regex",
        {"op": "match", "pattern": "(?P<word>B.)$", "value": "ab\nBx\nc", "flags": "im"},
    )
    assert found["match"] == "Bx"
    assert found["namedGroups"] == {"word": "Bx"}
    dotall = await _call(
        "transform.regex", {"op": "match", "pattern": "a.b", "value": "a\nb", "flags": "s"}
    )
    assert dotall["matched"] is True
    replaced = await _call(
        "transform.regex",
        {
            "op": "replace",
            "pattern": r"(\w+) (\w+)",
            "value": "John Smith",
            "replacement": r"\2, \1",
        },
    )
    assert replaced == {"value": "Smith, John", "replacements": 1}


async def test_json_parse_and_stringify() -> None:
    assert await _call("transform.jsonParse", {"text": '{"a": [1, 2.5, null, "x"]}'}) == {
        "value": {"a": [1, 2.5, None, "x"]}
    }
    assert await _call("transform.jsonParse", {"text": "3"}) == {"value": 3}
    err = await _fails("transform.jsonParse", {"text": "{nope"})
    assert (err.category, err.code) == ("ActionError", "INVALID_JSON")

    value = {"b": 1, "a": [True, None]}
    assert await _call("transform.jsonStringify", {"value": value}) == {
        "text": '{"b":1,"a":[true,null]}'
    }
    assert await _call("transform.jsonStringify", {"value": value, "sortKeys": True}) == {
        "text": '{"a":[true,null],"b":1}'
    }
    pretty = await _call("transform.jsonStringify", {"value": {"a": 1}, "pretty": True})
    assert pretty == {"text": '{\n  "a": 1\n}'}


async def test_build_object() -> None:
    out = await _call(
        "transform.buildObject",
        {
            "merge": [{"a": 1, "b": 2}, {"b": 3, "n": None}],
            "entries": [{"key": "c", "value": [1]}, {"key": "a", "value": None}, {"key": "d"}],
        },
    )
    assert out == {"value": {"a": None, "b": 3, "n": None, "c": [1], "d": None}}
    compact = await _call(
        "transform.buildObject",
        {"merge": [{"a": 1, "n": None}], "entries": [{"key": "b"}], "omitNull": True},
    )
    assert compact == {"value": {"a": 1}}
    assert await _call("transform.buildObject", {}) == {"value": {}}


async def test_build_array() -> None:
    items = [1, [2, [3]], None, {"a": 1, "b": 2}, {"b": 2, "a": 1}, 1]
    assert await _call("transform.buildArray", {"items": items}) == {"value": items}
    out = await _call(
        "transform.buildArray", {"items": items, "flatten": True, "omitNull": True, "unique": True}
    )
    assert out == {"value": [1, 2, [3], {"a": 1, "b": 2}]}
