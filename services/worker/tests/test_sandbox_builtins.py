"""The modules workflow code runs hot keep the plain `isinstance` under the workflow sandbox (the
sandbox's process-wide wrapper made expression evaluation 2.3-2.6 times slower)."""

from __future__ import annotations

import types

import jsonata.jsonata
import jsonata.utils
from stepwise_contract import expression_engine
from stepwise_worker import worker


def test_the_worker_binds_the_plain_builtins_into_the_evaluator() -> None:
    worker.workflow_runner()
    for module in (jsonata.jsonata, jsonata.utils, expression_engine, worker):
        for name in ("isinstance", "issubclass"):
            assert isinstance(vars(module).get(name), types.BuiltinFunctionType), (module, name)
