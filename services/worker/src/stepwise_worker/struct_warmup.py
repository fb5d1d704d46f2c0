"""Building msgspec's decoding info for every Struct the workflow code decodes, before polling.

msgspec builds a Struct type's decoding info on its first use and caches it on the type. Two
threads using a type for the first time at once can crash the process (msgspec 0.22.0: a
segfault in `convert`, reproduced by `tests/test_struct_warmup.py`). Workflow activations run on
a pool of threads, and a worker that starts with tasks waiting hands several runs their first
activation at once, each decoding its definition. So the worker builds every such type's info in
its main thread before it polls.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator

import msgspec

# importing these imports every module whose Structs workflow code decodes (inputs, results,
# signals, the definition, checkpoint state)
WORKFLOW_MODULES = (
    "stepwise_contract.dsl",
    "stepwise_contract.payloads",
    "stepwise_worker.messages",
    "stepwise_worker.evaluation_messages",
    "stepwise_worker.wait_messages",
    "stepwise_worker.workflow.run_workflow",
)
_OURS = ("stepwise_contract.", "stepwise_worker.")


def _subclasses(cls: type[msgspec.Struct]) -> Iterator[type[msgspec.Struct]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def workflow_struct_types() -> list[type[msgspec.Struct]]:
    """Every Struct of the contract and the worker, once `WORKFLOW_MODULES` are imported."""
    for name in WORKFLOW_MODULES:
        importlib.import_module(name)
    return sorted(
        {t for t in _subclasses(msgspec.Struct) if t.__module__.startswith(_OURS)},
        key=lambda t: (t.__module__, t.__qualname__),
    )


def warm(types: Iterable[type[msgspec.Struct]]) -> None:
    """Build each type's decoding info now, in this thread (a decoder builds it and caches it
    on the type, nested types included)."""
    for struct_type in types:
        msgspec.json.Decoder(struct_type)
