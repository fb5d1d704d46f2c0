"""Group commit: concurrent calls of one statement become one batched statement.

The router handles up to `concurrency` messages at once, each through the same steps (record,
wait lookup, trigger lookup, finish). On this kind of machine a statement round trip costs more
than the work inside it, so each step is a `GroupCommit`: a call queues its item and awaits its
own answer; while one batch statement is in flight the calls arriving meanwhile queue up, and the
next batch takes all of them (at most `max_batch`). An idle router therefore waits for nothing
(a lone call runs at once, as a batch of one), and a loaded one issues one statement per step
per batch instead of one per message.

Every message keeps its own answer and its own failure: when a batch statement fails, each of its
items is run again alone, so one poison message (say a payload Postgres refuses) fails by itself
and the others proceed. Items with the same `key` never share a batch (the later waits for the
next one), so a batch never writes the same row twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, Generic, TypeVar

import asyncpg

T = TypeVar("T")
R = TypeVar("R")

Batch = Callable[[Sequence[T]], Awaitable[Sequence[R]]]
One = Callable[[T], Awaitable[R]]


class GroupCommit(Generic[T, R]):
    def __init__(
        self,
        many: Batch[T, R],
        one: One[T, R],
        *,
        max_batch: int,
        key: Callable[[T], Hashable] | None = None,
        observe: Callable[[int], None] | None = None,
    ) -> None:
        self._many = many
        self._one = one
        self._max_batch = max(1, max_batch)
        self._key = key
        self._observe = observe
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._running: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        rest: list[tuple[T, asyncio.Future[R]]] = []
        seen: set[Hashable] = set()
        for entry in self._pending:
            if entry[1].done():  # its caller was cancelled
                continue
            if len(batch) >= self._max_batch:
                rest.append(entry)
                continue
            if self._key is not None:
                k = self._key(entry[0])
                if k in seen:
                    rest.append(entry)
                    continue
                seen.add(k)
            batch.append(entry)
        self._pending = rest
        return batch

    async def _flush(self) -> None:
        try:
            while self._pending:
                self._running = self._take()
                if self._running:
                    await self._run(self._running)
        except BaseException:
            # Cancelled (shutdown): nobody may wait forever on an answer that will not come.
            for _, future in [*self._running, *self._pending]:
                if not future.done():
                    future.set_exception(RuntimeError("group commit stopped"))
            self._pending = []
            raise
        finally:
            self._running = []
            self._flusher = None

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        if self._observe is not None:
            self._observe(len(batch))
        if len(batch) > 1:
            try:
                results = await self._many([item for item, _ in batch])
            except Exception:  # each item is retried alone below, and fails alone
                pass
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                return
        # A batch of one, or a batch that failed: every item alone, concurrently.
        await asyncio.gather(*(self._alone(item, future) for item, future in batch))

    async def _alone(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            result = await self._one(item)
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
        else:
            if not future.done():
                future.set_result(result)


class Batching:
    """How the routing steps group their statements: at most `max_batch` messages in one, and
    `observe(step, size)` told the size of each (the default, one message each, is no grouping)."""

    def __init__(
        self, max_batch: int = 1, observe: Callable[[str, int], None] | None = None
    ) -> None:
        self.max_batch = max_batch
        self._observe = observe

    def commit(
        self,
        step: str,
        many: Batch[T, R],
        one: One[T, R],
        *,
        key: Callable[[T], Hashable] | None = None,
    ) -> GroupCommit[T, R]:
        observe = self._observe
        return GroupCommit(
            many,
            one,
            max_batch=self.max_batch,
            key=key,
            observe=(lambda size: observe(step, size)) if observe else None,
        )


async def fetch_grouped(
    pool: asyncpg.Pool, statement: str, items: Sequence[dict[str, Any]]
) -> list[list[asyncpg.Record]]:
    """The rows of a batched lookup, per item. `statement` reads the items from `$1::jsonb`
    (`jsonb_to_recordset`), each with its index in the batch as `ord`, and returns `ord`."""
    rows = await pool.fetch(statement, [{"ord": n, **item} for n, item in enumerate(items)])
    grouped: list[list[asyncpg.Record]] = [[] for _ in items]
    for row in rows:
        grouped[row["ord"]].append(row)
    return grouped
