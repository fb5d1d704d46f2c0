"""Fails loudly when a jsonata-python upgrade moves the internals the bounded engine relies on.

`expression_engine` overrides evaluator methods and wraps built-ins of jsonata-python; an upgrade
that renames or reshapes them would silently bypass the budget. The package is pinned exactly;
bump the pin only together with this test.
"""

from __future__ import annotations

import inspect
from importlib.metadata import version

from jsonata import functions, utils
from jsonata.jsonata import Jsonata
from stepwise_contract import expression_engine
from stepwise_contract.expressions import SAFE_BUILTINS, compile_expression, last_work

PINNED = "0.7.1"

OVERRIDDEN = {
    "_eval": ["self", "expr", "input", "environment"],
    "apply": ["self", "proc", "args", "input", "environment"],
    "evaluate_range_expression": ["self", "lhs", "rhs"],
    "evaluate_string_concat": ["self", "lhs", "rhs"],
    "evaluate_unary": ["self", "expr", "input", "environment"],
    "evaluate_step": ["self", "expr", "input", "environment", "last_step"],
    "evaluate_wildcard": ["self", "expr", "input"],
    "evaluate_descendants": ["self", "expr", "input"],
    "evaluate_equality_expression": ["self", "lhs", "rhs", "op"],
    "evaluate_includes_expression": ["self", "lhs", "rhs"],
    "get_per_thread_instance": ["self"],
}


def test_the_pinned_version_is_installed() -> None:
    assert version("jsonata-python") == PINNED


def test_overridden_methods_keep_their_shape() -> None:
    for name, params in OVERRIDDEN.items():
        original = getattr(Jsonata, name)
        assert list(inspect.signature(original).parameters) == params, name
        assert name in vars(expression_engine.MeteredJsonata), name


def test_the_dispatch_covers_every_node_type_the_library_evaluates() -> None:
    source = inspect.getsource(Jsonata._eval)
    library_types: set[str] = set()
    for line in source.splitlines():
        stripped = line.strip()
        if "expr.type ==" in stripped and stripped.startswith(("if ", "elif ")):
            library_types.update(part.split('"')[1] for part in stripped.split("expr.type ==")[1:])
    assert library_types, "the library's dispatch was not found"
    assert library_types == set(expression_engine._DISPATCH)


def test_library_hooks_still_exist() -> None:
    # higher-order built-ins apply lambdas through the thread's current instance, by the helpers
    # `expression_engine` re-implements without their per-call import
    library = inspect.getsource(functions)
    assert "res = jsonata.Jsonata.CURRENT.jsonata.apply(func, func_args, None," in library
    assert "return func.signature.get_min_number_of_args()" in library
    assert "Functions.get_function_arity(func)" in inspect.getsource(
        functions.Functions.hof_func_args
    )
    assert "Functions.func_apply(" in inspect.getsource(functions.Functions.map)
    assert getattr(utils.Utils, "_stepwise_import_free", False)
    assert "Functions.to_boolean" in inspect.getsource(Jsonata.boolize)
    assert "function_clone" in inspect.getsource(Jsonata.Transformer.call)
    assert getattr(functions.Functions, "_stepwise_guarded", False)
    for name in SAFE_BUILTINS:
        assert isinstance(Jsonata.static_frame.lookup(name), Jsonata.JNativeFunction), name
    assert "regex_engine" in inspect.signature(Jsonata.__init__).parameters


def test_the_metered_paths_are_really_taken() -> None:
    """Behaviour, not just names: each override charges the budget when exercised."""
    probes = {
        "[1..50000] ~> $count()": 50_000,  # range
        "$count($map([1..10], $string))": 1_000,  # built-ins applied by a higher-order one
        '$length("a" & "b")': 1,
        "$count([[1..5000], [1..5000]])": 10_000,
    }
    for source, at_least in probes.items():
        compile_expression(source).evaluate({}, now_iso=lambda: "")
        assert last_work() >= at_least, source
