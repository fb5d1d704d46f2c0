"""event.wait filters (SPEC §3): every op, missing values, type mismatches, paths."""

from __future__ import annotations

from typing import Any

import pytest
from stepwise_contract.dsl import Filter
from stepwise_worker.workflow.filters import (
    MISSING,
    filter_passes,
    filters_pass,
    json_equal,
    lookup,
)

PAYLOAD: dict[str, Any] = {
    "status": "open",
    "priority": 3,
    "score": 2.5,
    "flag": True,
    "nothing": None,
    "tags": ["a", "b"],
    "ticket": {"id": "T-1", "owner": {"name": "Ada"}},
    "items": [{"sku": "x"}, {"sku": "y"}],
}


def check(path: str, op: str, value: Any = None) -> bool:
    return filter_passes(Filter(path=path, op=op, value=value), PAYLOAD)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("status", "open"),
        ("$.status", "open"),
        (".status", "open"),
        ("ticket.owner.name", "Ada"),
        ("$.ticket.owner.name", "Ada"),
        ("items.1.sku", "y"),
        ("nothing", None),
        ("ticket.missing", MISSING),
        ("status.deeper", MISSING),
        ("items.7.sku", MISSING),
        ("tags.x", MISSING),
    ],
)
def test_lookup_paths(path: str, expected: Any) -> None:
    assert lookup(PAYLOAD, path) == expected


def test_lookup_whole_payload() -> None:
    assert lookup(PAYLOAD, "$") is PAYLOAD
    assert lookup(PAYLOAD, "") is PAYLOAD


def test_lookup_on_non_object_payload() -> None:
    assert lookup(None, "a") is MISSING
    assert lookup("text", "a") is MISSING


@pytest.mark.parametrize(
    ("path", "op", "value", "expected"),
    [
        # equality
        ("status", "=", "open", True),
        ("status", "=", "closed", False),
        ("priority", "=", 3.0, True),
        ("flag", "=", 1, False),
        ("priority", "=", "3", False),
        ("nothing", "=", None, True),
        ("ticket", "=", {"id": "T-1", "owner": {"name": "Ada"}}, True),
        ("tags", "=", ["a", "b"], True),
        ("tags", "=", ["b", "a"], False),
        ("status", "!=", "closed", True),
        ("status", "!=", "open", False),
        ("flag", "!=", 1, True),
        # membership
        ("status", "in", ["open", "pending"], True),
        ("status", "in", ["closed"], False),
        ("priority", "in", [1, 2, 3], True),
        ("status", "in", "open", False),  # value not an array: the filter fails
        ("status", "not_in", ["closed"], True),
        ("status", "not_in", ["open"], False),
        ("status", "not_in", "closed", False),
        # existence (null is present)
        ("status", "exists", None, True),
        ("nothing", "exists", None, True),
        ("status", "not_exists", None, False),
        ("nothing", "not_exists", None, False),
        # ordering needs two numbers
        ("priority", ">", 2, True),
        ("priority", ">", 3, False),
        ("priority", ">=", 3, True),
        ("priority", "<", 3, False),
        ("priority", "<=", 3, True),
        ("score", "<", 3, True),
        ("status", ">", 1, False),
        ("priority", ">", "2", False),
        ("flag", ">", 0, False),
        ("priority", "<", None, False),
        # string ops need two strings
        ("status", "contains", "pe", True),
        ("status", "contains", "x", False),
        ("status", "starts_with", "op", True),
        ("status", "starts_with", "en", False),
        ("status", "ends_with", "en", True),
        ("status", "ends_with", "op", False),
        ("tags", "contains", "a", False),
        ("priority", "contains", "3", False),
        ("status", "contains", 1, False),
    ],
)
def test_ops_on_present_values(path: str, op: str, value: Any, expected: bool) -> None:
    assert check(path, op, value) is expected


@pytest.mark.parametrize(
    ("op", "value", "expected"),
    [
        ("=", "x", False),
        ("=", None, False),
        ("!=", "x", True),
        ("in", ["x"], False),
        ("not_in", ["x"], True),
        ("exists", None, False),
        ("not_exists", None, True),
        (">", 1, False),
        (">=", 1, False),
        ("<", 1, False),
        ("<=", 1, False),
        ("contains", "x", False),
        ("starts_with", "x", False),
        ("ends_with", "x", False),
    ],
)
def test_missing_value_satisfies_only_negations(op: str, value: Any, expected: bool) -> None:
    assert check("ticket.nope", op, value) is expected


def test_all_filters_must_pass() -> None:
    ok = Filter(path="status", op="=", value="open")
    bad = Filter(path="priority", op=">", value=10)
    assert filters_pass([], PAYLOAD)
    assert filters_pass([ok], PAYLOAD)
    assert not filters_pass([ok, bad], PAYLOAD)


def test_json_equal_distinguishes_bool_and_number() -> None:
    assert json_equal(1, 1.0)
    assert not json_equal(True, 1)
    assert not json_equal(0, False)
    assert json_equal({"a": [1, {"b": None}]}, {"a": [1.0, {"b": None}]})
    assert not json_equal({"a": 1}, {"a": 1, "b": 2})
