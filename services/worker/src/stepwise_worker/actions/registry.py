"""The worker's action registry: built-ins plus plugins from the `stepwise.actions` entry points."""

from __future__ import annotations

from collections.abc import Iterable

from stepwise_contract.actions import ActionCatalog, declaration_of, load_plugins

from stepwise_worker.actions.base import Action
from stepwise_worker.actions.builtin import builtin_actions


class ActionRegistry:
    def __init__(self, actions: Iterable[Action]) -> None:
        self._actions = {(a.declaration.id, a.declaration.version): a for a in actions}

    @classmethod
    def default(cls) -> ActionRegistry:
        """Built-ins and every installed plugin (declaring id, version, schemas, handler)."""
        plugins = [Action(declaration=declaration_of(p), handler=p.handler) for p in load_plugins()]
        return cls([*builtin_actions(), *plugins])

    def get(self, action_id: str, version: int) -> Action | None:
        return self._actions.get((action_id, version))

    def catalog(self) -> ActionCatalog:
        return {key: a.declaration for key, a in self._actions.items()}
