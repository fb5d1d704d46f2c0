"""What a launcher sends with a Temporal start (`Preloader`): the action facts of the definition
from the catalog, kept per definition hash and bounded; a definition that does not decode, or
calls an action the catalog does not declare, is left for the worker to load."""

from __future__ import annotations

from typing import Any

from stepwise_contract.actions import ActionDeclaration, builtin_catalog
from stepwise_contract.payloads import ActionFacts
from stepwise_contract.run_preload import MAX_PRELOADED_PAYLOAD_BYTES, Preloader

REMOTE = ActionDeclaration(
    id="test.remote", version=2, input_schema={}, output_schema={}, timeout_s=90.0, local=False
)
CATALOG = builtin_catalog([REMOTE])


def _call(step_id: str, action_id: str, version: int = 1) -> dict[str, Any]:
    return {"id": step_id, "type": "action.call",
            "config": {"actionId": action_id, "version": version}}  # fmt: skip


def _definition(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"name": "t", "steps": list(steps)}


NESTED = _definition(
    _call("a", "core.echo"),
    {"id": "if", "type": "control.if", "condition": True,
     "then": [_call("b", "test.remote", 2)], "else": [_call("c", "core.echo")]},
)  # fmt: skip


def test_facts_of_every_action_called_nested_ones_included() -> None:
    preloaded = Preloader(CATALOG).preload(
        definition=NESTED, definition_hash="h1", payload={"p": 1}
    )
    assert preloaded is not None
    assert (preloaded.definition, preloaded.definition_hash, preloaded.payload) == (
        NESTED,
        "h1",
        {"p": 1},
    )
    assert preloaded.actions == {
        "core.echo@1": ActionFacts(local=True, timeout_s=30.0),
        "test.remote@2": ActionFacts(local=False, timeout_s=90.0),
    }


def test_an_action_not_declared_here_leaves_the_run_to_the_worker() -> None:
    """A plugin installed on workers only: the worker's own catalog must decide."""
    preloader = Preloader(CATALOG)
    worker_only = _definition(_call("a", "core.echo"), _call("b", "worker.only"))
    for _ in range(2):  # the second answer comes from what is kept for the hash
        assert preloader.preload(definition=worker_only, definition_hash="h", payload={}) is None
    assert preloader.preload(definition=worker_only, definition_hash=None, payload={}) is None
    remote_v1 = _definition(_call("a", "test.remote", 1))  # declared at version 2 only
    assert preloader.preload(definition=remote_v1, definition_hash=None, payload={}) is None


def test_facts_are_kept_per_hash_and_the_cache_is_bounded() -> None:
    preloader = Preloader(CATALOG, kept=2)
    only_echo = _definition(_call("a", "core.echo"))
    first = preloader.preload(definition=NESTED, definition_hash="h1", payload=None)
    assert first is not None
    # equal hashes are equal definitions: the facts kept for h1 answer without decoding
    again = preloader.preload(definition=only_echo, definition_hash="h1", payload=None)
    assert again is not None and again.actions == first.actions
    assert again.definition == only_echo  # the definition itself is always the one given
    for digest in ("h2", "h3"):  # h1 is the oldest of three: dropped
        preloader.preload(definition=only_echo, definition_hash=digest, payload=None)
    fresh = preloader.preload(definition=only_echo, definition_hash="h1", payload=None)
    assert fresh is not None and list(fresh.actions) == ["core.echo@1"]


def test_without_a_hash_nothing_is_kept() -> None:
    preloader = Preloader(CATALOG)
    assert preloader.preload(definition=NESTED, definition_hash=None, payload=None) is not None
    plain = preloader.preload(
        definition=_definition(_call("a", "core.echo")), definition_hash=None, payload=None
    )
    assert plain is not None and list(plain.actions) == ["core.echo@1"]


def test_a_definition_that_does_not_decode_is_not_preloaded() -> None:
    broken: Any
    for broken in ({"steps": 5}, {"name": "t", "steps": [{"type": "no.such.type"}]}, None, []):
        assert (
            Preloader(CATALOG).preload(definition=broken, definition_hash="h", payload={}) is None
        )


def test_an_input_over_a_mebibyte_is_left_to_the_worker_s_size_check() -> None:
    preloader = Preloader(CATALOG)
    echo = _definition(_call("a", "core.echo"))
    near = {"blob": "x" * (MAX_PRELOADED_PAYLOAD_BYTES - 20)}
    assert preloader.preload(definition=echo, definition_hash="h", payload=near) is not None
    over = {"blob": "x" * MAX_PRELOADED_PAYLOAD_BYTES}
    assert preloader.preload(definition=echo, definition_hash="h", payload=over) is None
