"""What a launch sends with its Temporal start so the interpreter need not load it (`PreloadedRun`).

A launcher (the API, the router's triggers) already holds the run's pinned definition, its hash
and the input. With them, and the facts of the actions the definition calls, in the start's
input, a run saves the local activity (one workflow activation and one Postgres read) that would
load them again.

The action facts come from this process's catalog (built-ins and installed plugins). A definition
that calls an action this process does not declare is not preloaded: the worker then loads the
run and takes the facts from its own catalog, so a plugin installed on workers only still works.
The facts are kept per definition hash: equal hashes are equal definitions.

An input over 1 MiB is not preloaded either: the worker's load checks it against the worker's own
value limit (`STEPWISE_WORKER_MAX_VALUE_BYTES`), which a launcher does not know. (The API's
bodies stop at 512 KiB; a trigger's payload mapping can build more.)
"""

from __future__ import annotations

from typing import Any

import msgspec

from stepwise_contract import dsl
from stepwise_contract.actions import ActionCatalog, action_facts, called_actions
from stepwise_contract.payloads import ActionFacts, PreloadedRun

_KEPT = 1024
MAX_PRELOADED_PAYLOAD_BYTES = 1024 * 1024
_encoder = msgspec.json.Encoder()


class Preloader:
    def __init__(self, catalog: ActionCatalog, *, kept: int = _KEPT) -> None:
        self._catalog = catalog
        self._kept = kept
        # None: the definition calls an action not declared here (not preloaded)
        self._facts: dict[str, dict[str, ActionFacts] | None] = {}

    def preload(
        self, *, definition: Any, definition_hash: str | None, payload: Any
    ) -> PreloadedRun | None:
        """The preloaded run, or None when the worker should load it: the definition does not
        decode (the worker fails the run with the decoding error, as for any such run) or calls
        an action this catalog does not declare, or the input is over 1 MiB."""
        if len(_encoder.encode(payload)) > MAX_PRELOADED_PAYLOAD_BYTES:
            return None
        if definition_hash and definition_hash in self._facts:
            facts = self._facts[definition_hash]
        else:
            try:
                decoded = dsl.decode_definition(definition)
            except msgspec.ValidationError:
                return None
            declared = all(key in self._catalog for key in called_actions(decoded))
            facts = action_facts(decoded, self._catalog) if declared else None
            if definition_hash:
                if len(self._facts) >= self._kept:
                    self._facts.pop(next(iter(self._facts)))
                self._facts[definition_hash] = facts
        if facts is None:
            return None
        return PreloadedRun(
            definition=definition,
            definition_hash=definition_hash,
            payload=payload,
            actions=facts,
        )
