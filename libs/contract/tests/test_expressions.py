"""Expressions: allowlist, `==`, bare helpers, undefined handling, deterministic limits."""

from __future__ import annotations

from typing import Any

import pytest
from stepwise_contract.expressions import (
    UNDEFINED,
    ExpressionError,
    compile_expression,
    expression_context,
    resolve_value,
)

CTX = expression_context({"payload": {"a": 2, "s": "x==y"}, "vars": {"v": 5}, "meta": {}})


def now() -> str:
    return "2026-01-01T00:00:00Z"


def ev(src: str) -> Any:
    return compile_expression(src).evaluate(CTX, now_iso=now)


@pytest.mark.parametrize(
    ("src", "expected"),
    [
        ("payload.a == 2", True),
        ('payload.s = "x==y"', True),
        ("v + 1", 6),
        ("toString(5)", "5"),
        ("$toString(5.5)", "5.5"),
        ("len(payload)", 2),
        ("coalesce(nothing, 3)", 3),
        ("append([1], 2)", [1, 2]),
        ("nowIso()", "2026-01-01T00:00:00Z"),
        ('{"x": nothing, "y": 1}', {"y": 1}),
        ("$count([1,2])", 2),
        ("$map([1,2], function($x){$x*2})", [2, 4]),
        ("null", None),
    ],
)
def test_evaluate(src: str, expected: Any) -> None:
    assert ev(src) == expected


def test_undefined_result() -> None:
    assert ev("nothing.here") is UNDEFINED


@pytest.mark.parametrize("src", ["$now()", "$millis()", "$random()", '$eval("1")', "$foo(1)"])
def test_disallowed_functions(src: str) -> None:
    with pytest.raises(ExpressionError, match="not allowed"):
        compile_expression(src)


def test_syntax_error() -> None:
    with pytest.raises(ExpressionError, match="syntax"):
        compile_expression("1 +")


def test_function_result_refused() -> None:
    with pytest.raises(ExpressionError, match="function"):
        ev("function($x){$x}")


def test_budget_is_deterministic() -> None:
    with pytest.raises(ExpressionError, match="budget"):
        ev("$reduce([1..90000], function($a, $b){$a + $b})")


def test_result_size_guard() -> None:
    with pytest.raises(ExpressionError, match="exceeds"):
        ev('$split($pad("", 70000, "x"), "")')


def test_compiled_once() -> None:
    assert compile_expression("v + 1") is compile_expression("v + 1")


def test_resolve_value_walks_literals_and_keeps_secrets() -> None:
    value = {
        "a": {"$expr": "v"},
        "b": [{"$expr": "nothing"}],
        "c": {"$secret": "K"},
        "d": 1,
        "e": {"$expr": "nothing"},
    }
    out = resolve_value(value, CTX, now_iso=now)
    assert out == {"a": 5, "b": [None], "c": {"$secret": "K"}, "d": 1}
