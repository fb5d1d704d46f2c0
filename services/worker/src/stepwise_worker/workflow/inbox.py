"""The run's signal inbox (SPEC §5.4): signals wait here, typed, until a step consumes them.

The workflow's signal handlers only `add`; a blocking step takes the first entry it accepts, so
entries nobody accepted stay buffered (and are carried across continue-as-new). Event ids a run
consumed are remembered so the same event — delivered twice, or both buffered and signalled — is
consumed at most once per run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from stepwise_contract.payloads import (
    CurrentWait,
    InboxSignal,
    PendingEvent,
    PendingHumanTask,
    PendingQuotaResume,
)

S = TypeVar("S", PendingEvent, PendingHumanTask, PendingQuotaResume)


def _any(_signal: object) -> bool:
    return True


class Inbox:
    def __init__(self) -> None:
        self.signals: list[InboxSignal] = []
        # event ids this run consumed (SPEC §5.4: at most once per run)
        self.consumed_event_ids: list[str] = []
        # the wait a step is blocked on, for the current-wait query
        self.current_wait: CurrentWait | None = None

    def add(self, signal: InboxSignal) -> None:
        self.signals.append(signal)

    def has(self, kind: type[S], accept: Callable[[S], bool]) -> bool:
        return any(isinstance(entry, kind) and accept(entry) for entry in self.signals)

    def take(self, kind: type[S], accept: Callable[[S], bool]) -> S | None:
        """Remove and return the first entry of `kind` that `accept`s, if any."""
        for index, entry in enumerate(self.signals):
            if isinstance(entry, kind) and accept(entry):
                del self.signals[index]
                return entry
        return None

    def drop(self, kind: type[S], match: Callable[[S], bool] = _any) -> None:
        """Forget every entry of `kind` that `match`es (e.g. a second completion of a task)."""
        self.signals[:] = [
            entry for entry in self.signals if not (isinstance(entry, kind) and match(entry))
        ]

    def is_consumed(self, event_id: str) -> bool:
        return event_id in self.consumed_event_ids

    def drop_consumed_events(self) -> None:
        """Forget events this run already consumed (a second delivery of the same event)."""
        consumed = set(self.consumed_event_ids)
        self.drop(PendingEvent, lambda event: event.event_id in consumed)

    def mark_consumed(self, event_id: str) -> None:
        if event_id not in self.consumed_event_ids:
            self.consumed_event_ids.append(event_id)
        self.drop_consumed_events()

    @contextmanager
    def waiting_on(self, wait: CurrentWait) -> Iterator[None]:
        """Publish the current wait (for queries) while a step blocks."""
        self.current_wait = wait
        try:
            yield
        finally:
            self.current_wait = None
