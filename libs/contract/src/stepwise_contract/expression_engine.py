"""The bounded JSONata engine: jsonata-python with every costly operation metered.

jsonata-python (pinned exactly: this module relies on its internals, and
`libs/contract/tests/test_expression_engine_internals.py` fails loudly when an upgrade moves them)
is a tree-walking evaluator. Counting node entries alone misses the work done *inside* a node — a
range, `$pad`, `$sum`, `$distinct`, a regular expression, flattening a path — so this module:

- compiles regular-expression literals with RE2 (linear time, no backtracking; `re` holds the GIL
  for as long as a catastrophic pattern runs) and bounds the number of matches;
- wraps every allow-listed built-in so it pays for its input before it runs and for what it built
  after (`expression_budget`), refusing oversized strings and arrays up front where it can;
- overrides the evaluator's own loops (range, `&`, array constructors, path steps, wildcards,
  descendants, `=`/`in`) with the same accounting;
- gives every compiled expression a private frame holding only the metered built-ins, so a
  function outside the allowlist is not even reachable at run time;
- re-implements the library's hottest helpers without their per-call imports, which Temporal's
  workflow sandbox makes slow (same answers, nothing counted differently).
"""

from __future__ import annotations

import inspect
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Final

import re2
from jsonata import functions, signature, utils
from jsonata.jsonata import Jsonata
from jsonata.regex_engine import RegexFlags

from stepwise_contract import expression_budget as budget
from stepwise_contract.expression_budget import BudgetExceeded

_RE2_MAX_MEM: Final = (
    8 << 20
)  # per compiled pattern; RE2 refuses patterns whose automaton is larger


class _BoundedPattern:
    """An RE2 pattern with the interface jsonata-python expects, paying per input and per match."""

    __slots__ = ("_re", "pattern")

    def __init__(self, compiled: Any, pattern: str) -> None:
        self._re = compiled
        self.pattern = pattern

    def _matches(self, string: str) -> Iterator[Any]:
        budget.charge(budget.string_units(len(string)))
        for count, match in enumerate(self._re.finditer(string), start=1):
            if count > budget.MAX_ARRAY_ITEMS:
                raise BudgetExceeded(
                    f"/{self.pattern}/ matches more than {budget.MAX_ARRAY_ITEMS:,} times"
                )
            budget.charge(budget.MATCH_COST + budget.costs().match_extra)
            yield match

    def search(self, string: str) -> Any:
        budget.charge(budget.string_units(len(string)))
        return self._re.search(string)

    def finditer(self, string: str) -> Iterator[Any]:
        return self._matches(string)

    def sub(self, repl: Any, string: str, count: int = 0) -> str:
        matches = sum(1 for _ in self._matches(string))
        if count:
            matches = min(matches, count)
        if isinstance(repl, str):
            budget.check_string(len(string) + matches * len(repl), "$replace")
        result: str = self._re.sub(repl, string, count)
        budget.check_string(len(result), "$replace")
        return result

    def split(self, string: str, maxsplit: int = 0) -> list[str]:
        matches = sum(1 for _ in self._matches(string))
        budget.check_items(matches + 1, "$split")
        parts: list[str] = self._re.split(string, maxsplit)
        return parts


def re2_engine(pattern: str, flags: RegexFlags) -> _BoundedPattern:
    """jsonata-python's `regex_engine` hook: every regex literal is compiled by RE2."""
    options = re2.Options()
    options.case_sensitive = not flags.case_insensitive
    options.max_mem = _RE2_MAX_MEM
    options.log_errors = False
    source = f"(?m){pattern}" if flags.multiline else pattern
    try:
        compiled = re2.compile(source, options)
    except re2.error as exc:
        raise ValueError(
            f"regular expression /{pattern}/ is not supported by the linear-time engine (RE2):"
            f" {exc}"
        ) from None
    return _BoundedPattern(compiled, pattern)


# --- built-ins -------------------------------------------------------------------------------


def _arg(args: Sequence[Any], index: int) -> Any:
    return args[index] if len(args) > index else None


def _pre_string(args: Sequence[Any]) -> None:
    value = _arg(args, 0)
    if isinstance(value, str):
        budget.charge(budget.string_units(len(value)))
    elif value is not None and not isinstance(value, bool | int | float):
        budget.check_string(budget.measure(value, "$string"), "$string")


def _pre_growing_string(name: str) -> Callable[[Sequence[Any]], None]:
    """Built-ins whose output is at least as long as their input (case, encodings)."""

    def pre(args: Sequence[Any]) -> None:
        value = _arg(args, 0)
        if isinstance(value, str):
            budget.check_string(len(value), name)

    return pre


def _pre_pad(args: Sequence[Any]) -> None:
    width = _arg(args, 1)
    if isinstance(width, int | float) and math.isfinite(width):
        budget.check_string(int(abs(width)), "$pad")
    value = _arg(args, 0)
    if isinstance(value, str):
        budget.check_string(len(value), "$pad")


def _pre_join(args: Sequence[Any]) -> None:
    items = _arg(args, 0)
    separator = _arg(args, 1)
    if not isinstance(items, list):
        return
    budget.charge(len(items) * budget.WALK_COST)
    total = sum(len(item) for item in items if isinstance(item, str))
    if isinstance(separator, str):
        total += len(separator) * len(items)
    budget.check_string(total, "$join")


def _pre_split(args: Sequence[Any]) -> None:
    string, separator, limit = _arg(args, 0), _arg(args, 1), _arg(args, 2)
    if not isinstance(string, str) or not isinstance(separator, str):
        return  # a regex separator counts its own matches
    budget.charge(budget.string_units(len(string)))
    parts = len(string) if separator == "" else string.count(separator) + 1
    if isinstance(limit, int | float) and math.isfinite(limit) and limit >= 0:
        parts = min(parts, int(limit))
    budget.check_items(parts, "$split")


def _pre_replace(args: Sequence[Any]) -> None:
    string, pattern, replacement, limit = (_arg(args, i) for i in range(4))
    if not isinstance(string, str) or not isinstance(pattern, str) or not pattern:
        return  # a regex pattern counts its own matches
    budget.charge(budget.string_units(len(string)))
    count = string.count(pattern)
    if isinstance(limit, int | float) and math.isfinite(limit) and limit >= 0:
        count = min(count, int(limit))
    if isinstance(replacement, str):
        grown = len(string) + count * max(0, len(replacement) - len(pattern))
        budget.check_string(grown, "$replace")
    elif budget.costs().rescan_per_match:
        # the library's loop slices the rest of the string for every match it hands a function
        budget.charge(count * budget.string_units(len(string)))


def _expand_literal(replacement: str, pattern: str) -> str:
    """A replacement string as JSONata expands it for a literal pattern (no groups): `$$` is a
    dollar, `$0` the pattern, any other `$` stays literal."""
    parts: list[str] = []
    position = 0
    while position < len(replacement):
        index = replacement.find("$", position)
        if index == -1:
            parts.append(replacement[position:])
            break
        parts.append(replacement[position:index])
        position = index + 1
        following = replacement[position : position + 1]
        if following == "$":
            parts.append("$")
            position += 1
        elif following == "0":
            parts.append(pattern)
            position += 1
        else:
            parts.append("$")
    return "".join(parts)


_NOT_HANDLED: Final = object()


def _replace_literal(args: Sequence[Any]) -> Any:
    """`$replace` with a literal pattern and a string replacement in one pass (the library
    rescans the rest of the string per match: quadratic). Same result; anything else falls
    through to the library."""
    string, pattern, replacement, limit = (_arg(args, i) for i in range(4))
    if not (isinstance(string, str) and isinstance(pattern, str) and pattern):
        return _NOT_HANDLED
    if not isinstance(replacement, str):
        return _NOT_HANDLED
    if limit is None:
        count = -1
    elif isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0:
        count = limit
    else:
        return _NOT_HANDLED
    return string.replace(pattern, _expand_literal(replacement, pattern), count)


def _pre_sort(args: Sequence[Any]) -> None:
    items = _arg(args, 0)
    if isinstance(items, list) and len(items) > 1:
        budget.charge(int(len(items) * math.log2(len(items))) * budget.WALK_COST)


def _pre_distinct(args: Sequence[Any]) -> None:
    items = _arg(args, 0)
    if isinstance(items, list) and len(items) > 1:
        budget.measure(items, "$distinct")
        # membership test against the results so far: quadratic in the worst case
        budget.charge(len(items) * len(items) // 2 * budget.ITEM_COST)


def _pre_deep(name: str) -> Callable[[Sequence[Any]], None]:
    """Built-ins that walk their arguments' contents (objects inside arrays, truthiness)."""

    def pre(args: Sequence[Any]) -> None:
        for value in args:
            if isinstance(value, list | Mapping):
                budget.measure(value, name)

    return pre


def _pre_walk(args: Sequence[Any]) -> None:
    for value in args:
        if isinstance(value, list):
            budget.charge(len(value) * budget.WALK_COST)


_PRE: Final[Mapping[str, Callable[[Sequence[Any]], None]]] = {
    "string": _pre_string,
    "uppercase": _pre_growing_string("$uppercase"),
    "lowercase": _pre_growing_string("$lowercase"),
    "encodeUrlComponent": _pre_growing_string("$encodeUrlComponent"),
    "encodeUrl": _pre_growing_string("$encodeUrl"),
    "base64encode": _pre_growing_string("$base64encode"),
    "pad": _pre_pad,
    "join": _pre_join,
    "split": _pre_split,
    "replace": _pre_replace,
    "sort": _pre_sort,
    "distinct": _pre_distinct,
    "sum": _pre_walk,
    "max": _pre_walk,
    "min": _pre_walk,
    "average": _pre_walk,
    "keys": _pre_deep("$keys"),
    "spread": _pre_deep("$spread"),
    "merge": _pre_deep("$merge"),
    "lookup": _pre_deep("$lookup"),
    "each": _pre_deep("$each"),
    "sift": _pre_deep("$sift"),
    "boolean": _pre_deep("$boolean"),
    "not": _pre_deep("$not"),
    "zip": _pre_walk,
}


def check_built(result: Any, args: Sequence[Any], what: str) -> None:
    """Pay for (and cap) a value a function built; a value it merely passed through is free."""
    if any(result is arg for arg in args):
        return
    if isinstance(result, str):
        budget.check_string(len(result), what)
    elif isinstance(result, list):
        budget.check_items(len(result), what)
    elif isinstance(result, Mapping):
        budget.charge(len(result) * budget.ITEM_COST)


# built-ins whose signature types each array element (`<a<n>:n>`, `<a<s>s?:s>`, `<a<o>:o>`)
_TYPED_ARRAY_SIGNATURES: Final = frozenset({"sum", "max", "min", "average", "join", "merge"})


class _MeteredNative(Jsonata.JNativeFunction):  # type: ignore[misc]
    """A JSONata built-in that pays for its work (same signature, arity and implementation)."""

    def __init__(self, original: Any) -> None:
        self.__dict__.update(original.__dict__)
        self._label = f"${original.function_name}"
        self._pre = _PRE.get(original.function_name)
        # only typed-array signatures (`a<n>`, `a<s>`, ...) check every element
        self._typed_arrays = original.function_name in _TYPED_ARRAY_SIGNATURES

    def validate(self, args: Any, context: Any) -> Any:
        # signature checks walk array arguments element by element, in Python
        if self._typed_arrays and isinstance(args, list):
            budget.charge(
                sum(len(arg) for arg in args if isinstance(arg, list))
                * (budget.SIGNATURE_ITEM_COST + budget.costs().signature_item_extra)
            )
        return super().validate(args, context)

    def call(self, input: Any, args: Sequence[Any] | None) -> Any:
        call_args = list(args or [])
        budget.charge_native(self.function_name)
        if self._pre is not None:
            self._pre(call_args)
        result = _NOT_HANDLED
        if self.function_name == "replace":
            result = _replace_literal(call_args)
        if result is _NOT_HANDLED:
            result = super().call(input, args)
        check_built(result, call_args, self._label)
        return result


def metered_frame(names: frozenset[str]) -> Any:
    """A root frame holding only the named built-ins, each metered."""
    frame = Jsonata.Frame(None)
    for name in sorted(names):
        original = Jsonata.static_frame.lookup(name)
        if original is None:
            raise RuntimeError(f"jsonata-python has no built-in ${name}")
        frame.bind(name, _MeteredNative(original))
    return frame


# --- the evaluator's own loops -----------------------------------------------------------------


class MeteredJsonata(Jsonata):  # type: ignore[misc]
    """A compiled expression whose evaluator pays for the work inside each node."""

    def get_per_thread_instance(self) -> MeteredJsonata:
        # The library hands evaluation to "the last instance built on this thread", which may be
        # another (unmetered) instance. Its only per-call state is the `$eval` context, and `$eval`
        # is refused, so evaluating on `self` is safe from any thread.
        return self

    def _eval(self, expr: Any, input: Any, environment: Any) -> Any:
        # The library's dispatch, metered directly: its entry/exit callbacks are looked up through
        # the whole frame chain on every node, which made deep recursion several times slower.
        self.input = input
        self.environment = environment
        kind = getattr(expr, "type", None)
        budget.enter_node(kind)
        handler = _DISPATCH.get(kind) if kind is not None else None
        result = handler(self, expr, input, environment) if handler is not None else None
        predicate = getattr(expr, "predicate", None)
        if predicate is not None:
            filter_item = budget.costs().filter_item
            if filter_item and isinstance(result, list):
                budget.charge(len(result) * len(predicate) * filter_item)
            for item in predicate:
                result = self.evaluate_filter(item.expr, result, environment)
        if kind is not None and kind != "path" and getattr(expr, "group", None) is not None:
            result = self.evaluate_group_expression(expr.group, result, environment)
        budget.exit_node()
        if result is not None and utils.Utils.is_sequence(result) and not result.tuple_stream:
            if expr.keep_array:
                result.keep_singleton = True
            if not result:
                result = None
            elif len(result) == 1:
                result = result if result.keep_singleton else result[0]
        return result

    def apply(self, proc: Any, args: Any, input: Any, environment: Any) -> Any:
        # every function application: a call node, a higher-order built-in calling a lambda,
        # a chain step (`~>`)
        budget.charge(budget.CALL_COST)
        return super().apply(proc, args, input, environment)

    def evaluate_range_expression(self, lhs: Any, rhs: Any) -> Any:
        integers = all(isinstance(v, int) and not isinstance(v, bool) for v in (lhs, rhs))
        if integers and rhs >= lhs:
            budget.check_items(rhs - lhs + 1, "range")
        return super().evaluate_range_expression(lhs, rhs)

    def evaluate_string_concat(self, lhs: Any, rhs: Any) -> str:
        left = _concat_operand(lhs)
        right = _concat_operand(rhs)
        budget.check_string(len(left) + len(right), "&")
        return left + right

    def evaluate_unary(self, expr: Any, input: Any, environment: Any) -> Any:
        result = super().evaluate_unary(expr, input, environment)
        if str(expr.value) == "[" and isinstance(result, list):
            budget.check_items(len(result), "array constructor")
        return result

    def evaluate_step(self, expr: Any, input: Any, environment: Any, last_step: bool) -> Any:
        if expr.type == "sort":
            return super().evaluate_step(expr, input, environment, last_step)
        # Same semantics as the library's step; the flattening below is paid for per element.
        result = utils.Utils.create_sequence()
        for inp in input:
            res = self.eval(expr, inp, environment)
            if expr.stages is not None:
                for stage in expr.stages:
                    res = self.evaluate_filter(stage.expr, res, environment)
            if res is not None:
                result.append(res)
        if (
            last_step
            and len(result) == 1
            and isinstance(result[0], list)
            and not utils.Utils.is_sequence(result[0])
        ):
            return result[0]
        sequence = utils.Utils.create_sequence()
        total = 0
        for res in result:
            if not isinstance(res, list) or (isinstance(res, utils.Utils.JList) and res.cons):
                total += 1
                sequence.append(res)
            else:
                total += len(res)
                budget.check_items(total, "path step")
                sequence.extend(res)
        budget.check_items(total, "path step")
        return sequence

    def evaluate_wildcard(self, expr: Any, input: Any) -> Any:
        if isinstance(input, list | Mapping):
            budget.measure(input, "wildcard")
        return super().evaluate_wildcard(expr, input)

    def evaluate_descendants(self, expr: Any, input: Any) -> Any:
        if isinstance(input, list | Mapping):
            budget.measure(input, "descendants (**)")
        return super().evaluate_descendants(expr, input)

    def evaluate_equality_expression(self, lhs: Any, rhs: Any, op: Any) -> Any:
        _measure_containers("comparison", lhs, rhs)
        return super().evaluate_equality_expression(lhs, rhs, op)

    def evaluate_includes_expression(self, lhs: Any, rhs: Any) -> Any:
        _measure_containers("in", lhs, rhs)
        return super().evaluate_includes_expression(lhs, rhs)


_Handler = Callable[[MeteredJsonata, Any, Any, Any], Any]
_DISPATCH: Final[Mapping[str, _Handler]] = {
    "path": lambda j, e, i, env: j.evaluate_path(e, i, env),
    "binary": lambda j, e, i, env: j.evaluate_binary(e, i, env),
    "unary": lambda j, e, i, env: j.evaluate_unary(e, i, env),
    "name": lambda j, e, i, env: j.evaluate_name(e, i, env),
    "string": lambda j, e, i, env: j.evaluate_literal(e),
    "number": lambda j, e, i, env: j.evaluate_literal(e),
    "value": lambda j, e, i, env: j.evaluate_literal(e),
    "wildcard": lambda j, e, i, env: j.evaluate_wildcard(e, i),
    "descendant": lambda j, e, i, env: j.evaluate_descendants(e, i),
    "parent": lambda j, e, i, env: env.lookup(e.slot.label),
    "condition": lambda j, e, i, env: j.evaluate_condition(e, i, env),
    "block": lambda j, e, i, env: j.evaluate_block(e, i, env),
    "bind": lambda j, e, i, env: j.evaluate_bind_expression(e, i, env),
    "regex": lambda j, e, i, env: j.evaluate_regex(e),
    "function": lambda j, e, i, env: j.evaluate_function(e, i, env, utils.Utils.NONE),
    "variable": lambda j, e, i, env: j.evaluate_variable(e, i, env),
    "lambda": lambda j, e, i, env: j.evaluate_lambda(e, i, env),
    "partial": lambda j, e, i, env: j.evaluate_partial_application(e, i, env),
    "apply": lambda j, e, i, env: j.evaluate_apply_expression(e, i, env),
    "transform": lambda j, e, i, env: j.evaluate_transform_expression(e, i, env),
}


def _measure_containers(what: str, *values: Any) -> None:
    for value in values:
        if isinstance(value, list | Mapping):
            budget.measure(value, what)


def _concat_operand(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | Mapping):
        budget.check_string(budget.measure(value, "&"), "&")
    else:
        budget.charge(budget.costs().native_extra.get("string", 0))
    text: str = functions.Functions.string(value, None)
    return text


def _guard_library_walkers() -> None:
    """Meter the two recursive walkers the evaluator calls directly (not through a frame).

    `to_boolean` decides every condition and filter; `function_clone` copies the input of the
    transform operator. Outside a metered evaluation both behave exactly as the library's.
    """
    walking = threading.local()

    def guarded(name: str, original: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(arg: Any) -> Any:
            # measured once at the top: the walker's own recursion re-enters this wrapper
            if (
                budget.active()
                and not getattr(walking, name, False)
                and isinstance(arg, list | Mapping)
            ):
                setattr(walking, name, True)
                try:
                    budget.measure(arg, name)
                    return original(arg)
                finally:
                    setattr(walking, name, False)
            return original(arg)

        return run

    cls = functions.Functions
    if not getattr(cls, "_stepwise_guarded", False):
        cls.to_boolean = staticmethod(guarded("to_boolean", cls.to_boolean))
        cls.function_clone = staticmethod(guarded("function_clone", cls.function_clone))
        cls._stepwise_guarded = True


_guard_library_walkers()


# what `Signature.get_symbol` answers for a plain JSON value (never a function or a regex)
_JSON_SYMBOLS: Final = {str: "s", bool: "b", int: "n", float: "n", list: "a", dict: "o"}


def _skip_per_call_imports() -> None:
    """The library's hottest helpers, without their per-call `from jsonata import ...`.

    An import statement inside a function runs `builtins.__import__` on every call: cheap in plain
    Python, but Temporal's workflow sandbox replaces it with its own Python importer, which made
    every function call node, every element a typed signature checks (`$sum` of an array) and
    every item a higher-order built-in (`$map`, `$filter`, ...) applies a lambda to pay for a full
    import. Same answers as the library's for every value (a plain JSON value takes a shortcut).
    """
    function_callable = Jsonata.JFunctionCallable

    def is_function(o: Any) -> bool:
        return isinstance(o, function_callable)

    original_symbol = signature.Signature.get_symbol

    def get_symbol(self: Any, value: Any) -> str:
        symbol = _JSON_SYMBOLS.get(type(value))
        return symbol if symbol is not None else original_symbol(self, value)

    is_lambda = functions.Functions.is_lambda

    def get_function_arity(func: Any) -> int:
        if isinstance(func, Jsonata.JFunction):
            return int(func.signature.get_min_number_of_args())
        if isinstance(func, Jsonata.JLambda):
            return len(inspect.signature(func.function).parameters)
        return len(func.arguments)

    def func_apply(func: Any, func_args: Sequence[Any] | None) -> Any:
        # through the thread's current instance, as the library does (`evaluate` sets it)
        if is_lambda(func):
            current = Jsonata.CURRENT.jsonata
            return current.apply(func, func_args, None, current.environment)
        return func.call(None, func_args)

    guarded_to_boolean = functions.Functions.to_boolean

    def to_boolean(arg: Any) -> Any:
        # a condition's usual operand; the library answers `bool(arg)` for it after its import
        return arg if type(arg) is bool else guarded_to_boolean(arg)

    if not getattr(utils.Utils, "_stepwise_import_free", False):
        functions.Functions.to_boolean = staticmethod(to_boolean)
        utils.Utils.is_function = staticmethod(is_function)
        signature.Signature.get_symbol = get_symbol
        functions.Functions.get_function_arity = staticmethod(get_function_arity)
        functions.Functions.func_apply = staticmethod(func_apply)
        utils.Utils._stepwise_import_free = True


_skip_per_call_imports()
