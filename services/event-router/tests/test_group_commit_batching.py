"""`GroupCommit` alone, with fake statements: how calls are grouped and how failures stay apart."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest
from stepwise_router.group_commit import GroupCommit

pytestmark = pytest.mark.asyncio(loop_scope="session")


class FakeStatements:
    """`many` doubles each item unless a batch contains `poison`; `one` does the same alone."""

    def __init__(self, poison: int | None = None) -> None:
        self.poison = poison
        self.batches: list[list[int]] = []
        self.alone: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def many(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        await self.gate.wait()
        if self.poison in items:
            raise ValueError("batch refused")
        return [i * 2 for i in items]

    async def one(self, item: int) -> int:
        self.alone.append(item)
        await self.gate.wait()
        if item == self.poison:
            raise ValueError(f"{item} refused")
        return item * 2


def group(
    fake: FakeStatements, *, max_batch: int = 100, key: bool = False
) -> GroupCommit[int, int]:
    return GroupCommit(
        fake.many, fake.one, max_batch=max_batch, key=(lambda i: i % 10) if key else None
    )


async def burst(
    commit: GroupCommit[int, int], fake: FakeStatements, first: int, rest: Sequence[int]
) -> list[int | BaseException]:
    """`first` alone while the statements are held, then `rest` arriving meanwhile."""
    fake.gate.clear()
    lone = asyncio.create_task(commit(first))
    await asyncio.sleep(0)
    others = [asyncio.create_task(commit(i)) for i in rest]
    await asyncio.sleep(0.01)
    fake.gate.set()
    return await asyncio.gather(lone, *others, return_exceptions=True)


async def test_a_lone_call_runs_at_once_as_itself() -> None:
    fake = FakeStatements()
    assert await group(fake)(3) == 6
    assert fake.alone == [3] and fake.batches == []


async def test_calls_arriving_during_a_statement_share_the_next_one() -> None:
    fake = FakeStatements()
    assert await burst(group(fake), fake, 1, range(2, 9)) == [i * 2 for i in range(1, 9)]
    assert fake.alone == [1]
    assert fake.batches == [list(range(2, 9))]


async def test_a_poison_item_fails_alone_and_its_batch_mates_get_their_answers() -> None:
    fake = FakeStatements(poison=5)
    results = await burst(group(fake), fake, 1, range(2, 9))
    failed = [r for r in results if isinstance(r, Exception)]
    assert [str(e) for e in failed] == ["5 refused"]
    assert [r for r in results if not isinstance(r, Exception)] == [
        i * 2 for i in range(1, 9) if i != 5
    ]
    # the batch was tried once, then each of its items alone (each answered exactly once)
    assert fake.batches == [list(range(2, 9))]
    assert sorted(fake.alone) == list(range(1, 9))


async def test_items_with_the_same_key_never_share_a_batch_and_the_size_is_bounded() -> None:
    fake = FakeStatements()
    # keys (i % 10): 1, 11 and 21 share key 1
    results = await burst(group(fake, max_batch=3, key=True), fake, 100, (1, 11, 2, 21, 3, 4))
    assert results == [200, 2, 22, 4, 42, 6, 8]
    assert fake.batches[0] == [1, 2, 3]
    for batch in fake.batches:
        assert len(batch) <= 3 and len({i % 10 for i in batch}) == len(batch)
    answered = sorted(i for batch in fake.batches for i in batch) + fake.alone
    assert sorted(answered) == [1, 2, 3, 4, 11, 21, 100]


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    fake = FakeStatements()
    commit = group(fake)
    fake.gate.clear()
    first = asyncio.create_task(commit(1))
    await asyncio.sleep(0)
    second, third = asyncio.create_task(commit(2)), asyncio.create_task(commit(3))
    await asyncio.sleep(0)
    second.cancel()
    await asyncio.sleep(0.01)
    fake.gate.set()
    assert await first == 2 and await third == 6
    with pytest.raises(asyncio.CancelledError):
        await second
    assert 2 not in [i for batch in fake.batches for i in batch] + fake.alone
