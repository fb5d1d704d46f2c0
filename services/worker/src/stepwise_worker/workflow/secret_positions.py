"""Where a published definition wrote `{"$secret": NAME}` — the only places a secret resolves.

A `$secret` is a property of the definition, not of data: the workflow reads the positions off an
action's literal `inputMapping` (never inside a `$expr`, whose result is data) and sends them with
the call. The activity resolves refs at those positions only, so the same object arriving in a
payload, an event, an action output, a store value or an expression result stays plain data.

Pure and deterministic: this module runs in workflow code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stepwise_contract.expressions import is_expr, is_secret_ref

SecretPath = list[str | int]


def declared_secret_paths(mapping: Mapping[str, Any]) -> list[SecretPath]:
    """The positions of the refs in a literal input mapping, as paths into the resolved input.

    Resolving keeps every key of an object and every index of an array (an undefined entry is
    dropped or nulled in place), so a literal's position is its position in the resolved input.
    """
    found: list[SecretPath] = []
    stack: list[tuple[Any, SecretPath]] = [(v, [k]) for k, v in reversed(list(mapping.items()))]
    while stack:
        value, path = stack.pop()
        if is_secret_ref(value):
            found.append(path)
        elif is_expr(value):
            continue
        elif isinstance(value, dict):
            stack.extend((v, [*path, k]) for k, v in reversed(list(value.items())))
        elif isinstance(value, list):
            stack.extend((v, [*path, i]) for i, v in reversed(list(enumerate(value))))
    return found
