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


class _Meter(threading.local):
    active = False
    work = 0
    depth = 0


_meter = _Meter()


def start() -> None:
    _meter.active = True
    _meter.work = 0
    _meter.depth = 0


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
    if _meter.work > MAX_WORK:
        raise BudgetExceeded(f"evaluation budget of {MAX_WORK:,} work units exceeded")


def enter_node() -> None:
    _meter.depth += 1
    charge(NODE_COST)
    if _meter.depth > MAX_EVAL_DEPTH:
        raise BudgetExceeded(f"evaluation deeper than {MAX_EVAL_DEPTH} levels")


def exit_node() -> None:
    _meter.depth -= 1


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
    charge(count * ITEM_COST)


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
