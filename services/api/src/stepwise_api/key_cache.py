"""A short-lived cache of verified API keys, so most requests skip the auth round trip.

An entry maps a key's sha256 to what the lookup found (the principal) for `ttl_s` seconds after
the lookup. Revoking a key, suspending a tenant or changing its redaction settings therefore takes
effect within `ttl_s` on every replica, without any message between them. Only successful lookups
are cached: an unknown or revoked key always costs a lookup, so a client cannot fill the cache with
guesses. The cache is bounded; when full it is emptied (a burst of lookups, never a wrong answer).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")


class KeyCache(Generic[V]):
    def __init__(
        self,
        ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, V]] = {}

    def get(self, key_hash: str) -> V | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key_hash]
            return None
        return value

    def put(self, key_hash: str, value: V, looked_up_at: float) -> None:
        """Keep `value`, found by a lookup that started at `looked_up_at` (the clock's time): the
        bound counts from before the database answered, never from after."""
        if self._ttl_s <= 0:
            return
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
        self._entries[key_hash] = (looked_up_at + self._ttl_s, value)

    def now(self) -> float:
        return self._clock()
