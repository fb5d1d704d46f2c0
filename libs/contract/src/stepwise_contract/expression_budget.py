"""The work budget of one expression evaluation: counted, deterministic, never timed.

Expressions run inside workflow code on workers every tenant shares, so one evaluation must never
be able to hold a worker for long. A wall-clock limit would break replay (the same evaluation must
always succeed or fail the same way), so the evaluator *counts* work instead, in abstract units of
roughly 40 ns of CPU on a 2020s core:

- every node the evaluator enters costs `NODE_COST`, every function application `CALL_COST`;
- every element a built-in copies, creates or compares costs `ITEM_COST`; walking a value in
  Python (to serialise, compare, measure or convert it) costs `WALK_COST` per element, checking it
  against a built-in's signature `SIGNATURE_ITEM_COST`; each regular-expression match
  `MATCH_COST`;
- string work costs one unit per `CHARS_PER_UNIT` characters read or written.

An evaluation may spend `MAX_WORK` units (about half a second of CPU at most, well inside
Temporal's 2 s workflow-task deadlock detector). Values an expression *builds* are capped too:
a string at `MAX_STRING_CHARS`, an array at `MAX_ARRAY_ITEMS`, nesting at `MAX_VALUE_DEPTH`.
Values that come in (payload, variables, event) are read freely; they were size-checked when they
entered. The final result is capped at `MAX_RESULT_BYTES` of JSON by `expressions`.

Costs are charged *before* the work where the size is known up front (a range, `$pad`, a join), so
a hostile expression fails at once instead of after the damage.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final

from stepwise_contract.json_limits import MAX_JSON_DEPTH

MAX_RESULT_BYTES: Final = 256 * 1024
# what a forEach `items` expression may *select* from the run's data: the ceiling of any value
MAX_SELECTED_BYTES: Final = 10 * 1024 * 1024
MAX_WORK: Final = 4_000_000
NODE_COST: Final = 100
CALL_COST: Final = 400
ITEM_COST: Final = 1
WALK_COST: Final = 50
MATCH_COST: Final = 200
SIGNATURE_ITEM_COST: Final = 40
CHARS_PER_UNIT: Final = 4
MAX_STRING_CHARS: Final = MAX_RESULT_BYTES
MAX_ARRAY_ITEMS: Final = 100_000
MAX_VALUE_DEPTH: Final = 100  # a value walked (inputs are checked at 64 where they enter)
MAX_RESULT_DEPTH: Final = MAX_JSON_DEPTH  # a result is stored like any input
MAX_EVAL_DEPTH: Final = 200
MAX_SOURCE_CHARS: Final = 16 * 1024


class BudgetExceeded(Exception):
    """Raised inside the evaluator; `expressions` turns it into an `ExpressionError`."""


class WorkBudgetExceeded(BudgetExceeded):
    """The work budget ran out (not a size or depth cap): a larger budget might succeed."""


@dataclass(frozen=True, slots=True)
class Costs:
    """One version of the price list. A run keeps the version it started with (the worker picks
    it through a workflow patch), so a replay always counts what the first execution counted."""

    version: int
    max_work: int
    # a built-in's fixed price on top of its call (argument wrapping, signature validation)
    native_call: int = 0
    # extra prices by node type, on top of `NODE_COST`
    node_extra: Mapping[str, int] = field(default_factory=dict)
    # extra prices by built-in name, on top of `native_call`
    native_extra: Mapping[str, int] = field(default_factory=dict)
    # a `$replace` whose replacement is a function rescans the rest of the string per match
    rescan_per_match: bool = False
    # on top of `MATCH_COST`: the library builds a match object (groups, index) per match
    match_extra: int = 0
    # on top of `SIGNATURE_ITEM_COST`: typed-array signatures check each element in Python
    signature_item_extra: int = 0
    # on top of `ITEM_COST`: every element an array constructor, range or copy touches
    item_extra: int = 0
    # each element a predicate (`[...]`) is evaluated for, on top of its nodes
    filter_item: int = 0


# The first price list: nodes, calls and elements only.
COSTS_V1: Final = Costs(version=1, max_work=MAX_WORK)

# Calibrated so that every kind of work costs about the same CPU per unit (about 13 ns on this
# project's 2-core reference machine, the rate of a `$map` over a lambda): built-ins pay for their
# fixed overhead, the slow formatters for theirs, node types for what they do beyond a lookup.
# `MAX_WORK_V2` then bounds any evaluation to about 0.07 s of CPU (about the same inside the
# workflow sandbox, see docs/expressions.md; the worker runs 8 activations at once inside
# Temporal's 2 s deadlock detector); a `$map` of a small lambda over 6,500 items fits.
MAX_WORK_V2: Final = 5_000_000
COSTS: Final = Costs(
    version=2,
    max_work=MAX_WORK_V2,
    native_call=900,
    node_extra={
        "function": 500,  # a call site: arguments evaluated into a list, then applied
        "condition": 200,
        "unary": 200,  # object and array constructors
        "lambda": 100,
        "bind": 100,
    },
    native_extra={
        "formatNumber": 5_000,
        "formatInteger": 5_000,
        "formatBase": 400,
        "fromMillis": 5_000,
        "toMillis": 500,
        "parseInteger": 5_000,
        "string": 500,  # numbers go through a JSON encoder set up per call
        "number": 300,
        "round": 300,
        "match": 1_000,
        "substring": 200,
        "lookup": 200,
    },
    rescan_per_match=True,
    match_extra=300,
    signature_item_extra=40,
    item_extra=1,
    filter_item=150,
)


# The worker evaluates inside workflow code with a small budget first, so that no tenant's
# expression holds a shared worker thread for long; an evaluation that runs out of it is evaluated
# again in a separate process with the large one (the result is recorded in the run's history).
INLINE_MAX_WORK: Final = 1_000_000
OFFLOADED_MAX_WORK: Final = 10_000_000
INLINE_COSTS: Final = replace(COSTS, version=3, max_work=INLINE_MAX_WORK)
OFFLOADED_COSTS: Final = replace(COSTS, version=3, max_work=OFFLOADED_MAX_WORK)


class _Meter(threading.local):
    active = False
    work = 0
    depth = 0
    costs = COSTS


_meter = _Meter()


def start(costs: Costs = COSTS) -> None:
    _meter.active = True
    _meter.work = 0
    _meter.depth = 0
    _meter.costs = costs


def costs() -> Costs:
    return _meter.costs


def stop() -> int:
    """Ends metering on this thread; returns the work spent."""
    _meter.active = False
    return _meter.work


def active() -> bool:
    return _meter.active


def spent() -> int:
    return _meter.work


def charge(units: int) -> None:
    if not _meter.active:
        return
    _meter.work += units
    if _meter.work > _meter.costs.max_work:
        raise WorkBudgetExceeded(
            f"evaluation budget of {_meter.costs.max_work:,} work units exceeded"
        )


def enter_node(kind: str | None = None) -> None:
    _meter.depth += 1
    extra = _meter.costs.node_extra.get(kind, 0) if kind is not None else 0
    charge(NODE_COST + extra)
    if _meter.depth > MAX_EVAL_DEPTH:
        raise BudgetExceeded(f"evaluation deeper than {MAX_EVAL_DEPTH} levels")


def exit_node() -> None:
    _meter.depth -= 1


def charge_native(name: str) -> None:
    costs = _meter.costs
    if costs.native_call:
        charge(costs.native_call + costs.native_extra.get(name, 0))


def string_units(length: int) -> int:
    return length // CHARS_PER_UNIT + 1


def check_string(length: int, what: str) -> None:
    """A string the expression would build: capped, and paid for by its length."""
    if length > MAX_STRING_CHARS:
        raise BudgetExceeded(
            f"{what} would build a string of {length:,} characters (limit {MAX_STRING_CHARS:,})"
        )
    charge(string_units(length))


def check_items(count: int, what: str) -> None:
    """An array the expression would build: capped, and paid for per element."""
    if count > MAX_ARRAY_ITEMS:
        raise BudgetExceeded(
            f"{what} would build an array of {count:,} items (limit {MAX_ARRAY_ITEMS:,})"
        )
    charge(count * (ITEM_COST + _meter.costs.item_extra))


def measure(value: Any, what: str) -> int:
    """Walk `value` (iteratively), paying per element; returns its approximate JSON size in bytes.

    Bounded by the budget itself, so even a value that shares sub-structures exponentially (built
    by reference in a few steps) is refused before anything walks it in full. Nesting deeper than
    `MAX_VALUE_DEPTH` is refused: the library's own walkers are recursive.
    """
    size = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    pending = 0
    while stack:
        item, depth = stack.pop()
        pending += WALK_COST
        if isinstance(item, str):
            size += len(item) + 2
            pending += len(item) // CHARS_PER_UNIT
        elif isinstance(item, Mapping):
            if depth >= MAX_VALUE_DEPTH:
                raise BudgetExceeded(f"{what}: value nested deeper than {MAX_VALUE_DEPTH} levels")
            size += 2 + len(item)
            for key, child in item.items():
                size += len(str(key)) + 3
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            if depth >= MAX_VALUE_DEPTH:
                raise BudgetExceeded(f"{what}: value nested deeper than {MAX_VALUE_DEPTH} levels")
            size += 2 + len(item)
            stack.extend((child, depth + 1) for child in item)
        else:
            size += 8
        if pending >= 4096:
            charge(pending)
            pending = 0
    charge(pending)
    return size
