"""Hostile expressions fail fast, cleanly and deterministically; honest work still fits.

Every case here ran unbounded (or froze a worker) before the sandbox: see docs/expressions.md.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from stepwise_contract.expression_budget import COSTS, COSTS_V1, INLINE_COSTS, OFFLOADED_COSTS
from stepwise_contract.expressions import ExpressionError, compile_expression, last_work

BIG = "x" * 300_000
CONTEXT: dict[str, Any] = {
    "payload": {"big": BIG, "list": list(range(50_000)), "text": "a" * 200_000},
    "vars": {},
}


def run(source: str, context: dict[str, Any] | None = None) -> Any:
    return compile_expression(source).evaluate(
        CONTEXT if context is None else context, now_iso=lambda: "2026-01-01T00:00:00Z"
    )


# (expression, what the error says) — refused before the work is done: the size is known up front
REFUSED_UP_FRONT = [
    ("$sum([1..9999999])", "range would build"),
    ("$count([1..9999999])", "range would build"),
    ("$count($distinct([1..200000]))", "range would build"),
    ('$length($pad("", 50000000, "x"))', "$pad would build"),
    ('$length($pad("x", -50000000))', "$pad would build"),
    ('$count($split(payload.big, ""))', "$split would build"),
    ('$count($split(payload.big, "x"))', "$split would build"),
    ('$length($replace(payload.text, "a", "bbbbbbbbbb"))', "$replace would build"),
    ('$length($replace(payload.text, /a{100}/, $pad("", 200, "b")))', "$replace would build"),
    ("$count($match(payload.big, /x/))", "budget"),
    ("$length($uppercase(payload.big))", "$uppercase would build"),
    ("$length($base64encode(payload.big))", "$base64encode would build"),
    ("$length($encodeUrlComponent(payload.big))", "$encodeUrlComponent would build"),
    ("$length(payload.big & payload.big)", "& would build"),
    ("$length($string(payload.list))", "$string would build"),
    ('$length($join(payload.list.$string($), ","))', "budget"),
    ("$length(toString(payload.list))", "toString would build"),
    ("$count([payload.list, payload.list, payload.list])", "array constructor would build"),
    ("$count([1..60000].[$, $])", "budget"),
    ("payload.big", "exceeds"),
]

# pure computation: bounded by the counted budget
BUDGET_BOUND = [
    "($f := function($n){$n > 0 ? $f($n-1) + $f($n-1) : 1}; $f(40))",
    "$count($map([1..3000], function($i) {[1..3000]}))",
    "$reduce([1..90000], function($a, $b){$a + $b})",
    "$sum(payload.list) + $sum(payload.list)",
    '$reduce([1..5000], function($acc, $v){ $acc & "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }, "")',
    "$count($distinct([1..20000]))",
    "$sort([1..60000], function($a, $b){$a < $b})",
    # nested object construction: each level references the previous twice (exponential by sharing)
    '$string($reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}))',
    '$reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}) = {}',
    '$count($reduce([1..60], function($acc, $v){ {"l": $acc, "r": $acc} }, {}).**)',
    "$boolean($reduce([1..60], function($acc, $v){ [[$acc], [$acc]] }, [0]))",
]

DEEP = [
    # nesting deeper than the value limit, built one level per step
    '$string($reduce([1..500], function($acc, $v){ {"a": $acc} }, {}))',
    '$reduce([1..500], function($acc, $v){ {"a": $acc} }, {})',
    "($f := function($n){$n = 0 ? 0 : 1 + $f($n-1)}; $f(200000))",
    "(" * 3000 + "1" + ")" * 3000,
]


@pytest.mark.parametrize(("source", "message"), REFUSED_UP_FRONT)
def test_size_bombs_are_refused_before_the_work(source: str, message: str) -> None:
    started = time.process_time()  # CPU, not wall time: other work may load the machine
    with pytest.raises(ExpressionError) as caught:
        run(source)
    elapsed = time.process_time() - started
    assert message in str(caught.value)
    assert source[:40] in str(caught.value), "the error names the expression"
    if message != "budget":
        assert last_work() < COSTS.max_work, (
            "refused from its known size, not after spending the budget"
        )
    assert elapsed < 2.0  # generous: a loaded CI machine; the figures are in docs/expressions.md


@pytest.mark.parametrize("source", BUDGET_BOUND)
def test_computation_bombs_stop_at_the_budget(source: str) -> None:
    with pytest.raises(ExpressionError):
        run(source)
    first = last_work()
    assert first > COSTS.max_work
    with pytest.raises(ExpressionError):
        run(source)
    assert last_work() == first, "the same evaluation always counts the same work"


@pytest.mark.parametrize("source", DEEP)
def test_deep_nesting_is_an_expression_error_never_a_recursion_error(source: str) -> None:
    with pytest.raises(ExpressionError, match=r"deeper|too deep|nested"):
        run(source)


def test_catastrophic_regex_is_linear() -> None:
    evil = "a" * 5000 + "!"
    for source in (
        f'$contains("{evil}", /^(a+)+$/)',
        f'$match("{evil}", /(a|aa)+$/)',
        f'$replace("{evil}", /^(a+)+$/, "x")',
        f'$split("{evil}", /(a*)*b/)',
    ):
        started = time.process_time()
        run(source)
        assert time.process_time() - started < 2.0, source


def test_regex_without_a_linear_engine_is_a_syntax_error() -> None:
    with pytest.raises(ExpressionError, match="RE2"):
        compile_expression(r'$match("aa", /(a)\1/)')
    with pytest.raises(ExpressionError, match="RE2"):
        compile_expression('$contains("ab", /a(?=b)/)')


def test_regex_semantics_are_kept() -> None:
    assert run('$match("ab12cd34", /[a-z]+(\\d+)/)') == [
        {"match": "ab12", "index": 0, "groups": ["12"]},
        {"match": "cd34", "index": 4, "groups": ["34"]},
    ]
    assert run('$replace("John Smith", /(\\w+)\\s(\\w+)/, "$2, $1")') == "Smith, John"
    assert run('$split("a1b22c", /\\d+/)') == ["a", "b", "c"]
    assert run('$contains("HELLO", /hel/i)') is True
    assert run('$replace("abc", /b/, function($m){$uppercase($m.match)})') == "aBc"
    assert run('$match("éa1", /\\d/).index') == 2


def test_honest_work_fits() -> None:
    assert run("$count($map([1..6500], function($v){ $v * 2 }))") == 6_500
    assert run("$sum($map([1..5000], function($v){ $v * 2 }))") == 25_005_000
    assert run("$count($filter([1..4000], function($v){ $v % 2 = 0 }))") == 2_000
    assert run("$count([1..10000].($ * 2))") == 10_000
    assert run('$length($replace(payload.text, "a", "b"))') == 200_000
    assert run("$sum(payload.list)", {"payload": {"list": list(range(30_000))}}) == sum(
        range(30_000)
    )
    assert run('$length($pad("", 200000, "x"))') == 200_000
    assert len(run('$pad("", 200000, "x")')) == 200_000
    assert run("$length(payload.big)") == 300_000
    assert run("len(payload.big)") == 300_000
    assert run("$count(payload.list)") == 50_000
    assert run("$sum([1..20000])") == sum(range(1, 20_001))
    assert run("payload.list[-1]") == 49_999
    assert run("$substring(payload.big, 0, 3)") == "xxx"
    assert run("$count($distinct([1..2000].($ % 7)))") == 7
    assert run("$sort([5, 3, 9])") == [3, 5, 9]
    assert run('$string({"a": [1, 2, {"b": null}]})') == '{"a":[1,2,{"b":null}]}'


def test_selecting_a_large_input_is_allowed_when_the_caller_raises_the_cap() -> None:
    compiled = compile_expression("payload.list")
    items = compiled.evaluate(CONTEXT, now_iso=lambda: "", max_result_bytes=10 * 1024 * 1024)
    assert len(items) == 50_000


def test_source_length_is_capped() -> None:
    with pytest.raises(ExpressionError, match="longer than"):
        compile_expression("1 + " * 5000 + "1")


def test_runs_started_before_the_calibration_keep_its_price_list() -> None:
    # a run keeps the price list it started with: replays must count what the first run counted
    compiled = compile_expression("$count($map([1..6000], function($v){ $v * 2 }))")
    assert compiled.evaluate({}, now_iso=lambda: "", costs=COSTS) == 6_000
    with pytest.raises(ExpressionError, match="4,000,000 work units"):
        compiled.evaluate({}, now_iso=lambda: "", costs=COSTS_V1)


def test_a_literal_replace_is_linear_and_matches_the_library() -> None:
    # the library rescans the rest of the string per match (seconds for this one before)
    context = {"payload": {"text": "ab" * 15_000}}
    started = time.process_time()
    for _ in range(20):
        assert run('$replace(payload.text, "a", "c$0$$")', context) == "ca$b" * 15_000
    assert time.process_time() - started < 2.0
    assert run('$replace("abcabc", "b", "x", 1)') == "axcabc"
    assert run('$replace("a$b", "$", "!")') == "a!b"
    assert run('$replace("abc", "b", "$1")') == "a$1c"
    # a function replacement still takes the library's path, and pays for its rescans
    with pytest.raises(ExpressionError, match="budget"):
        run('$replace(payload.text, "a", function($m){"c"})')


def test_work_is_reported_on_success_and_is_stable() -> None:
    run("$sum([1..1000])")
    first = last_work()
    run("$sum([1..1000])")
    assert last_work() == first > 0


def test_results_nest_at_most_as_deep_as_any_input() -> None:
    assert run('$reduce([1..63], function($acc, $v){ {"a": $acc} }, {})') is not None
    with pytest.raises(ExpressionError, match="nested deeper than 64"):
        run('$reduce([1..64], function($acc, $v){ {"a": $acc} }, {})')


def test_running_out_of_work_is_told_apart_from_a_cap() -> None:
    # the worker re-evaluates elsewhere with a larger budget only what ran out of work
    compiled = compile_expression("$count($map([1..10000], function($v){ $v * 2 }))")
    with pytest.raises(ExpressionError) as caught:
        compiled.evaluate({}, now_iso=lambda: "", costs=INLINE_COSTS)
    assert caught.value.over_budget
    assert caught.value.with_step("root[0]").over_budget
    assert compiled.evaluate({}, now_iso=lambda: "", costs=OFFLOADED_COSTS) == 10_000
    for capped in ('$pad("", 50000000)', "$count([1..9999999])", "(" * 300 + "1" + ")" * 300):
        with pytest.raises(ExpressionError) as caught:
            run(capped)
        assert not caught.value.over_budget, capped
