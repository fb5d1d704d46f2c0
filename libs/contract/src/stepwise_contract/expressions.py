"""JSONata expressions with Stepwise's allowlist and deterministic limits (SPEC §4).

Used by the worker (inside workflow code: no clock, no I/O), by the router (trigger payload
mappings) and by the API (publish validation). Sources are compiled once and cached.

- `==` is accepted as `=`; the reference's helpers `nowIso`, `coalesce`, `len`, `toString`,
  `append` are callable with or without `$`.
- Only allowlisted functions may be called; `$now`, `$millis`, `$random` and `$eval` are refused
  (clock and randomness break replay). `nowIso()` reads the caller-supplied clock (workflow time).
- Evaluation is bounded by a counted work budget (`expression_budget`) and runs on a metered
  engine with RE2 regular expressions (`expression_engine`) — never by wall-clock time.
- The result is capped at 256 KiB of JSON.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from jsonata import jexception, utils
from jsonata.jsonata import Jsonata

from stepwise_contract import expression_budget as budget
from stepwise_contract.expression_budget import (
    COSTS,
    MAX_RESULT_BYTES,
    MAX_RESULT_DEPTH,
    MAX_SOURCE_CHARS,
    BudgetExceeded,
    Costs,
    WorkBudgetExceeded,
)
from stepwise_contract.expression_engine import (
    MeteredJsonata,
    check_built,
    metered_frame,
    re2_engine,
)

CUSTOM_FUNCTIONS: Final = frozenset({"nowIso", "coalesce", "len", "toString", "append"})

# JSONata built-ins that are pure and deterministic. Documented in docs/expressions.md.
SAFE_BUILTINS: Final = frozenset(
    {
        # string
        "string",
        "length",
        "substring",
        "substringBefore",
        "substringAfter",
        "uppercase",
        "lowercase",
        "trim",
        "pad",
        "contains",
        "split",
        "join",
        "replace",
        "match",
        "base64encode",
        "base64decode",
        "encodeUrlComponent",
        "encodeUrl",
        "decodeUrlComponent",
        "decodeUrl",
        "formatNumber",
        "formatBase",
        "formatInteger",
        "parseInteger",
        # numeric
        "number",
        "abs",
        "floor",
        "ceil",
        "round",
        "power",
        "sqrt",
        "sum",
        "max",
        "min",
        "average",
        "count",
        # array / object
        "sort",
        "reverse",
        "distinct",
        "zip",
        "keys",
        "lookup",
        "spread",
        "merge",
        "each",
        "shuffle_is_not_allowed",
        "map",
        "filter",
        "reduce",
        "single",
        "sift",
        # boolean / type
        "boolean",
        "not",
        "exists",
        "type",
        "assert",
        "error",
        # date conversions that do not read the clock
        "toMillis",
        "fromMillis",
    }
) - {"shuffle_is_not_allowed"}

_BARE_CALL = re.compile(r"(?<![\w$.])(" + "|".join(sorted(CUSTOM_FUNCTIONS)) + r")\s*\(")
UNDEFINED: Final = msgspec.UNSET  # the final result of an expression that produced nothing


class ExpressionError(Exception):
    """An expression failed to compile or evaluate. `step_path` is filled in by the interpreter."""

    def __init__(
        self,
        message: str,
        *,
        source: str,
        step_path: str | None = None,
        over_budget: bool = False,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.source = source
        self.step_path = step_path
        # the work budget ran out (a size or depth cap is `False`): a larger one might succeed
        self.over_budget = over_budget

    def with_step(self, step_path: str) -> ExpressionError:
        return ExpressionError(
            self.message, source=self.source, step_path=step_path, over_budget=self.over_budget
        )

    def __str__(self) -> str:
        where = f" at {self.step_path}" if self.step_path else ""
        return f"{self.message}{where} (expression: {self.source})"


def _rewrite(source: str) -> str:
    """`==` → `=`, bare helper calls → `$helper(`, leaving string literals and names untouched."""
    out: list[str] = []
    i, n = 0, len(source)
    chunk_start = 0

    def flush(end: int) -> None:
        code = source[chunk_start:end].replace("==", "=")
        out.append(_BARE_CALL.sub(lambda m: "$" + m.group(1) + "(", code))

    while i < n:
        ch = source[i]
        if ch in "\"'`":
            flush(i)
            j = i + 1
            while j < n and source[j] != ch:
                j += 2 if source[j] == "\\" else 1
            out.append(source[i : j + 1])
            i = j + 1
            chunk_start = i
            continue
        if ch == "/" and i + 1 < n and source[i + 1] == "*":
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            flush(i)
            out.append(source[i:j])
            i = j
            chunk_start = i
            continue
        i += 1
    flush(n)
    return "".join(out)


_AST_SKIP = {"_outer_instance", "token", "position", "signature", "_jsonata_lambda"}


def _walk(node: Any, seen: set[int]) -> Any:
    if isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item, seen)
        return
    if not hasattr(node, "__dict__") or id(node) in seen:
        return
    if type(node).__module__ != "jsonata.parser":
        return
    seen.add(id(node))
    yield node
    for key, value in vars(node).items():
        if key not in _AST_SKIP and value is not None:
            yield from _walk(value, seen)


def _check_functions(ast: Any, source: str) -> None:
    nodes = list(_walk(ast, set()))
    local_names: set[str] = set()
    for node in nodes:
        if node.type == "bind" and getattr(node.lhs, "value", None):
            local_names.add(str(node.lhs.value))
        if node.type == "lambda":
            for arg in node.arguments or []:
                if getattr(arg, "value", None):
                    local_names.add(str(arg.value))
    for node in nodes:
        if node.type in ("function", "partial"):
            proc = node.procedure
            if getattr(proc, "type", None) != "variable":
                continue
            name = str(proc.value)
            if name in CUSTOM_FUNCTIONS or name in SAFE_BUILTINS or name in local_names:
                continue
            raise ExpressionError(f"function ${name} is not allowed", source=source)
        elif node.type == "variable" and node.value in ("now", "millis", "random", "eval"):
            raise ExpressionError(f"function ${node.value} is not allowed", source=source)


_BUILTINS: Final = metered_frame(SAFE_BUILTINS)


def _scalar(value: Any) -> Any:
    if value is None or value is utils.Utils.NULL_VALUE:
        return None
    if (
        isinstance(value, float)
        and math.isfinite(value)
        and value.is_integer()
        and abs(value) < 2**53
    ):
        return int(value)
    if isinstance(value, bool | str | int | float):
        return value
    raise TypeError("an expression may not return a function")


def _to_json(value: Any) -> Any:
    """Plain JSON values, built iteratively and paid for: sequences become lists, JSONata's null
    becomes None, integral floats become ints. Refuses nesting deeper than `MAX_RESULT_DEPTH`."""
    if not isinstance(value, list | tuple | Mapping):
        return _scalar(value)
    root: list[Any] = [None]
    # (source value, container to fill, key or index in it, depth)
    stack: list[tuple[Any, Any, Any, int]] = [(value, root, 0, 0)]
    while stack:
        item, parent, slot, depth = stack.pop()
        budget.charge(budget.WALK_COST)
        if isinstance(item, Mapping):
            if depth >= MAX_RESULT_DEPTH:
                raise BudgetExceeded(f"result nested deeper than {MAX_RESULT_DEPTH} levels")
            obj: dict[str, Any] = {}
            parent[slot] = obj
            for key, child in item.items():
                obj[str(key)] = None
                stack.append((child, obj, str(key), depth + 1))
        elif isinstance(item, list | tuple):
            if depth >= MAX_RESULT_DEPTH:
                raise BudgetExceeded(f"result nested deeper than {MAX_RESULT_DEPTH} levels")
            arr: list[Any] = [None] * len(item)
            parent[slot] = arr
            for index, child in enumerate(item):
                stack.append((child, arr, index, depth + 1))
        else:
            parent[slot] = _scalar(item)
    return root[0]


def _json_arg(value: Any) -> Any:
    return None if value is None else _to_json(value)


def _coalesce(*args: Any) -> Any:
    for arg in args:
        if arg is not None and arg is not utils.Utils.NULL_VALUE:
            return arg
    return None


def _len(value: Any) -> int:
    if value is None or value is utils.Utils.NULL_VALUE:
        return 0
    if isinstance(value, str | list | tuple | Mapping):
        return len(value)
    return len(str(_json_arg(value)))


def _to_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple | Mapping):
        budget.check_string(budget.measure(value, "toString"), "toString")
    text = msgspec.json.encode(_json_arg(value)).decode()
    check_built(text, (), "toString")
    return text


def _append(items: Any, value: Any) -> list[Any]:
    if items is None or items is utils.Utils.NULL_VALUE:
        base: list[Any] = []
    elif isinstance(items, list | tuple):
        budget.check_items(len(items) + 1, "append")
        base = list(items)
    else:
        base = [items]
    return [*base, value]


class CompiledExpression:
    """One compiled JSONata source; thread-safe to evaluate (state is per thread)."""

    __slots__ = ("_jsonata", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        if len(source) > MAX_SOURCE_CHARS:
            raise ExpressionError(
                f"expression longer than {MAX_SOURCE_CHARS} characters", source=source[:200]
            )
        try:
            compiled = MeteredJsonata(_rewrite(source), re2_engine)
        except jexception.JException as exc:
            raise ExpressionError(f"syntax error: {exc}", source=source) from None
        except RecursionError:
            raise ExpressionError(
                "syntax error: expression nested too deeply", source=source
            ) from None
        except Exception as exc:
            raise ExpressionError(f"syntax error: {exc}", source=source) from None
        _check_functions(compiled.ast, source)
        compiled.set_output_convert_nulls(False)
        # Our inputs are decoded JSON already; the library's check would walk them all per call.
        compiled.set_validate_input(False)
        compiled.environment = Jsonata.Frame(_BUILTINS)
        compiled.register_lambda("coalesce", _coalesce)
        compiled.register_lambda("len", _len)
        compiled.register_lambda("toString", _to_string)
        compiled.register_lambda("append", _append)
        self._jsonata = compiled

    def evaluate(
        self,
        context: Mapping[str, Any],
        *,
        now_iso: Callable[[], str],
        max_result_bytes: int = MAX_RESULT_BYTES,
        costs: Costs = COSTS,
    ) -> Any:
        """Evaluate against `context`; returns `UNDEFINED` when the result is undefined.

        `max_result_bytes` caps the JSON size of the result (256 KiB for every value an expression
        computes; the interpreter passes the payload ceiling where an expression only *selects* a
        list to iterate). The work spent is `last_work()` afterwards, on success and on failure.
        """
        bindings = {"nowIso": Jsonata.JLambda(lambda: now_iso())}
        # Higher-order built-ins apply lambdas through "the thread's current instance": make sure
        # that is this metered one, whatever else was compiled on this thread since.
        Jsonata.CURRENT.jsonata = self._jsonata
        budget.start(costs)
        try:
            raw = self._jsonata.evaluate(context, bindings)
            if raw is None:
                return UNDEFINED
            result = _to_json(raw)
            if isinstance(result, dict | list | str):
                self._check_size(result, max_result_bytes)
            return result
        except jexception.JException as exc:
            raise ExpressionError(str(exc), source=self.source) from None
        except BudgetExceeded as exc:
            raise ExpressionError(
                str(exc), source=self.source, over_budget=isinstance(exc, WorkBudgetExceeded)
            ) from None
        except RecursionError:
            raise ExpressionError("expression too deep", source=self.source) from None
        except ExpressionError:
            raise
        except Exception as exc:
            raise ExpressionError(f"{type(exc).__name__}: {exc}", source=self.source) from None
        finally:
            budget.stop()

    def _check_size(self, result: Any, limit: int) -> None:
        # A cheap upper bound first, so a huge result is refused without encoding it.
        if isinstance(result, str) and len(result) * 4 <= limit:
            return
        if len(msgspec.json.encode(result)) > limit:
            raise ExpressionError(f"expression result exceeds {limit:,} bytes", source=self.source)


def last_work() -> int:
    """Work units the last evaluation on this thread spent (deterministic for the same input)."""
    return budget.spent()


_cache: dict[str, CompiledExpression] = {}
_cache_lock = threading.Lock()


def compile_expression(source: str) -> CompiledExpression:
    """Compile once per source string (process-wide cache)."""
    found = _cache.get(source)
    if found is not None:
        return found
    if not isinstance(source, str) or not source.strip():
        raise ExpressionError("expression must be a non-empty string", source=str(source))
    compiled = CompiledExpression(source)
    with _cache_lock:
        _cache.setdefault(source, compiled)
    return compiled


def is_expr(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$expr" in value


def is_secret_ref(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "$secret" in value


def expression_context(scopes: Mapping[str, Any]) -> dict[str, Any]:
    """The input document: `vars` reachable by bare name, the named scopes on top."""
    variables = scopes.get("vars") or {}
    context: dict[str, Any] = dict(variables) if isinstance(variables, dict) else {}
    context.update(scopes)
    return context


def iter_expressions(value: Any) -> Any:
    """Every `$expr` source inside a literal config value (walked recursively)."""
    if is_expr(value):
        yield value["$expr"]
    elif isinstance(value, dict):
        for item in value.values():
            yield from iter_expressions(item)
    elif isinstance(value, list):
        for item in value:
            yield from iter_expressions(item)


def resolve_value(
    value: Any,
    context: Mapping[str, Any],
    *,
    now_iso: Callable[[], str],
    keep_secrets: bool = True,
    max_result_bytes: int = MAX_RESULT_BYTES,
    costs: Costs = COSTS,
) -> Any:
    """Resolve `$expr` everywhere inside a literal; `$secret` refs are kept for the activity.

    An expression whose result is undefined is dropped from an enclosing object (as JSONata's own
    object constructors do) and becomes null inside an array; at the top level it is `UNDEFINED`.
    """
    if is_expr(value):
        source = value["$expr"]
        if not isinstance(source, str):
            raise ExpressionError("$expr must be a string", source=str(source))
        return compile_expression(source).evaluate(
            context, now_iso=now_iso, max_result_bytes=max_result_bytes, costs=costs
        )
    if is_secret_ref(value):
        return value if keep_secrets else UNDEFINED
    if isinstance(value, dict):
        resolved: dict[str, Any] = {}
        for key, item in value.items():
            out = resolve_value(
                item, context, now_iso=now_iso, keep_secrets=keep_secrets, costs=costs
            )
            if out is not UNDEFINED:
                resolved[key] = out
        return resolved
    if isinstance(value, list):
        items = [
            resolve_value(v, context, now_iso=now_iso, keep_secrets=keep_secrets, costs=costs)
            for v in value
        ]
        return [None if v is UNDEFINED else v for v in items]
    return value
