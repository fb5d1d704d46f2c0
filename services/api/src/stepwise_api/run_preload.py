"""What a launch sends with its Temporal start so the interpreter need not load it (`PreloadedRun`).

The launch already holds the run's pinned definition, its hash and the input. With them, and the
facts of the actions the definition calls, in the start's input, a run saves the local activity
(one workflow activation and one Postgres read) that would load them again.

The action facts come from this process's catalog (built-ins and installed plugins), the catalog
the definition was validated against when it was published; API and worker replicas are expected
to install the same action plugins. They are kept per definition hash: equal hashes are equal
definitions, so they call the same actions.
"""

from __future__ import annotations

from typing import Any

import msgspec
from stepwise_contract import dsl
from stepwise_contract.actions import ActionCatalog, action_facts
from stepwise_contract.payloads import ActionFacts, PreloadedRun

_KEPT = 1024


class Preloader:
    def __init__(self, catalog: ActionCatalog, *, kept: int = _KEPT) -> None:
        self._catalog = catalog
        self._kept = kept
        self._facts: dict[str, dict[str, ActionFacts]] = {}

    def preload(
        self, *, definition: Any, definition_hash: str | None, payload: Any
    ) -> PreloadedRun | None:
        """The preloaded run, or None when the definition does not decode (the worker then loads
        the run itself and fails it with the decoding error, as for any such run)."""
        facts = self._facts.get(definition_hash) if definition_hash else None
        if facts is None:
            try:
                decoded = dsl.decode_definition(definition)
            except msgspec.ValidationError:
                return None
            facts = action_facts(decoded, self._catalog)
            if definition_hash:
                if len(self._facts) >= self._kept:
                    self._facts.pop(next(iter(self._facts)))
                self._facts[definition_hash] = facts
        return PreloadedRun(
            definition=definition,
            definition_hash=definition_hash,
            payload=payload,
            actions=facts,
        )
