"""The offloaded expression evaluation: what the workflow sends and what it gets back.

An evaluation that runs out of the small inline budget inside workflow code is evaluated again by
a local activity, in a separate process, with the large budget. Its outcome is recorded in the
run's history (a local-activity marker), so a replay reuses it and never evaluates again.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

EVALUATE_EXPRESSION: Final = "stepwise.evaluate_expression"


class EvaluateExpression(msgspec.Struct, frozen=True, kw_only=True):
    value: Any  # a config value with `$expr` inside, as written in the definition
    context: dict[str, Any]  # the expression's input document
    now_iso: str  # `nowIso()`: workflow time when the inline evaluation ran
    max_result_bytes: int


class EvaluatedExpression(msgspec.Struct, frozen=True, kw_only=True):
    defined: bool = True
    value: Any = None
    # an ExpressionError: its message and the expression that raised it
    error: str | None = None
    source: str = ""
