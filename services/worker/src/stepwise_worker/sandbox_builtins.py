"""Gives the modules passed through Temporal's workflow sandbox the plain `isinstance`.

While any workflow activation runs, the sandbox replaces `builtins.isinstance` and
`builtins.issubclass` for the whole process with a Python wrapper (it unwraps the sandbox's proxy
objects, then looks up a per-thread override): every call costs a few Python frames instead of one
C call. The expression evaluator (jsonata-python, our metering) calls `isinstance` several times per
node, which made an evaluation take 2.3-2.6 times the CPU inside the sandbox that it takes outside.

A module-level global shadows the builtin, so binding the C functions into the namespace of the
modules we pass through (loaded once, outside the sandbox, and never handed a sandbox proxy: they
import the real stdlib) restores the plain call there. Workflow code the sandbox loads itself keeps
the wrapper. Nothing the evaluator computes or counts changes, only the CPU it takes.
"""

from __future__ import annotations

import builtins
import sys
import types
from collections.abc import Iterable
from typing import Final

# Captured when the worker is assembled, before any activation can have swapped them.
_PLAIN: Final = {
    name: fn
    for name in ("isinstance", "issubclass")
    if isinstance(fn := getattr(builtins, name), types.BuiltinFunctionType)
}


def bind_plain_builtins(packages: Iterable[str]) -> int:
    """Binds the plain builtins into every loaded pure-Python module of `packages`; returns how
    many modules it bound (0 when this module was first imported inside an activation)."""
    roots = tuple(packages)
    bound = 0
    for name, module in list(sys.modules.items()):
        source = getattr(module, "__file__", None) or ""
        if name.partition(".")[0] not in roots or not source.endswith(".py"):
            continue
        for builtin, fn in _PLAIN.items():
            module.__dict__.setdefault(builtin, fn)
        bound += bool(_PLAIN)
    return bound
