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
        """Built-ins and every installed plugin (declaring id, version, schemas, handler).

        A plugin may not replace a built-in or another plugin: which one won would depend on
        install order, so two installs of the same definition could run different code.
        """
        actions = builtin_actions()
        seen = {(a.declaration.id, a.declaration.version) for a in actions}
        for plugin in load_plugins():
            action = Action(declaration=declaration_of(plugin), handler=plugin.handler)
            key = (action.declaration.id, action.declaration.version)
            if key in seen:
                raise ValueError(f"plugin action {key[0]}@{key[1]} is declared twice")
            seen.add(key)
            actions.append(action)
        return cls(actions)

    def get(self, action_id: str, version: int) -> Action | None:
        return self._actions.get((action_id, version))

    def catalog(self) -> ActionCatalog:
        return {key: a.declaration for key, a in self._actions.items()}
