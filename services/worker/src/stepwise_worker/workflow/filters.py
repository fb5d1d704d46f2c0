"""`event.wait` filters (SPEC §3), evaluated on an event payload.

A filter is `{path, op, value?}`. `path` is dotted with an optional leading `$.` (a leading `.` is
tolerated, as the reference does); a segment walks into an object by key or, when it is a
non-negative integer, into an array by index. An empty path (or `$`) is the payload itself.

A value that is absent satisfies only `!=`, `not_in` and `not_exists`. A JSON `null` is present.
Equality is JSON equality: `1 == 1.0`, but `true != 1` and objects/arrays compare structurally.
Ordering ops need two numbers and string ops (`contains`, `starts_with`, `ends_with`) two
strings, else the filter fails. `in`/`not_in` need an array `value`, else the filter fails.

Pure functions: safe to call from workflow code (no I/O, no clock).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from stepwise_contract.dsl import Filter


class _Missing:
    """The marker of an absent value (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def _segments(path: str) -> list[str]:
    text = path.strip()
    if text == "$":
        return []
    if text.startswith("$."):
        text = text[2:]
    elif text.startswith("."):
        text = text[1:]
    return [segment for segment in text.split(".") if segment != ""]


def lookup(payload: Any, path: str) -> Any:
    """The value at `path` in `payload`, or `MISSING`."""
    current = payload
    for segment in _segments(path):
        if isinstance(current, dict):
            if segment not in current:
                return MISSING
            current = current[segment]
        elif isinstance(current, list) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                return MISSING
            current = current[index]
        else:
            return MISSING
    return current


def _is_number(value: Any) -> bool:
    # bool is an int subclass in Python, but never a number in JSON
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """Equality of two JSON values (numbers by value, booleans never equal to numbers)."""
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(
            json_equal(a, b) for a, b in zip(left, right, strict=True)
        )
    return bool(left == right)


def _member(actual: Any, options: Any) -> bool | None:
    """Whether `actual` is in the array `options`; None when `options` is not an array."""
    if not isinstance(options, list):
        return None
    return any(json_equal(actual, option) for option in options)


def _ordered(actual: Any, expected: Any, op: str) -> bool:
    if not (_is_number(actual) and _is_number(expected)):
        return False
    match op:
        case ">":
            return bool(actual > expected)
        case ">=":
            return bool(actual >= expected)
        case "<":
            return bool(actual < expected)
        case _:
            return bool(actual <= expected)


def _textual(actual: Any, expected: Any, op: str) -> bool:
    if not (isinstance(actual, str) and isinstance(expected, str)):
        return False
    match op:
        case "contains":
            return expected in actual
        case "starts_with":
            return actual.startswith(expected)
        case _:
            return actual.endswith(expected)


def filter_passes(flt: Filter, payload: Any) -> bool:
    """Whether the event payload satisfies one filter."""
    actual = lookup(payload, flt.path)
    op = flt.op
    if actual is MISSING:
        if op == "not_in":
            return isinstance(flt.value, list)
        return op in ("!=", "not_exists")
    match op:
        case "=":
            return json_equal(actual, flt.value)
        case "!=":
            return not json_equal(actual, flt.value)
        case "in":
            return _member(actual, flt.value) is True
        case "not_in":
            return _member(actual, flt.value) is False
        case "exists":
            return True
        case "not_exists":
            return False
        case ">" | ">=" | "<" | "<=":
            return _ordered(actual, flt.value, op)
        case _:
            return _textual(actual, flt.value, op)


def filters_pass(filters: Iterable[Filter], payload: Any) -> bool:
    """Whether the payload satisfies every filter (no filters: always)."""
    return all(filter_passes(flt, payload) for flt in filters)
