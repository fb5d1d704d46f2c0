"""`StartRecorder` against real Postgres: what is queued is written in one statement, a run id
already recorded is kept, everything queued is written when it stops, and a write Postgres
refuses leaves the rows to reconciliation without stopping the writer."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest
from stepwise_contract.platform import start_recorder
from stepwise_contract.platform.start_recorder import StartRecorder


async def _runs(pool: asyncpg.Pool, count: int) -> list[uuid.UUID]:
    tenant = uuid.uuid4()
    await pool.execute("INSERT INTO tenants (tenant, name) VALUES ($1, 't')", tenant)
    ids = [uuid.uuid4() for _ in range(count)]
    await pool.executemany(
        "INSERT INTO workflow_runs (run_id, tenant, workflow_id, workflow_version, status)"
        " VALUES ($1, $2, $3, 1, 'RUNNING')",
        [(run_id, tenant, uuid.uuid4()) for run_id in ids],
    )
    return ids


async def _recorded(pool: asyncpg.Pool, ids: list[uuid.UUID]) -> dict[uuid.UUID, str | None]:
    rows = await pool.fetch(
        "SELECT run_id, temporal_run_id FROM workflow_runs WHERE run_id = ANY($1)", ids
    )
    return {r["run_id"]: r["temporal_run_id"] for r in rows}


class CountingPool:
    """The real pool, counting statements (and failing the first `fail` of them)."""

    def __init__(self, pool: asyncpg.Pool, fail: int = 0) -> None:
        self.pool = pool
        self.statements = 0
        self.fail = fail
        self.attempted = asyncio.Event()  # set after each statement, written or refused

    async def execute(self, query: str, *args: object) -> str:
        self.statements += 1
        try:
            if self.statements <= self.fail:
                raise asyncpg.PostgresConnectionError("blip")
            return await self.pool.execute(query, *args)
        finally:
            self.attempted.set()

    async def next_statement(self) -> None:
        self.attempted.clear()
        async with asyncio.timeout(30):
            await self.attempted.wait()


async def test_queued_ids_are_written_together_and_on_stop(pool: asyncpg.Pool) -> None:
    ids = await _runs(pool, 50)
    counting = CountingPool(pool)
    recorder = StartRecorder(counting)  # type: ignore[arg-type]
    async with recorder.running():
        for n, run_id in enumerate(ids[:40]):
            recorder.record(run_id, f"t-{n}")
        # 40 queued before the writer ran once: one statement
        await counting.next_statement()
        assert counting.statements == 1
        assert set((await _recorded(pool, ids[:40])).values()) == {f"t-{n}" for n in range(40)}
        for n, run_id in enumerate(ids[40:], start=40):
            recorder.record(run_id, f"t-{n}")
    # stopping writes what was still queued
    assert await _recorded(pool, ids) == {run_id: f"t-{n}" for n, run_id in enumerate(ids)}


async def test_a_recorded_run_id_is_kept(pool: asyncpg.Pool) -> None:
    [run_id] = await _runs(pool, 1)
    await pool.execute(
        "UPDATE workflow_runs SET temporal_run_id = 'first' WHERE run_id = $1", run_id
    )
    async with StartRecorder(pool).running() as recorder:
        recorder.record(run_id, "second")
    assert await _recorded(pool, [run_id]) == {run_id: "first"}


async def test_a_refused_write_is_retried_once_then_left_to_reconciliation(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(start_recorder, "RETRY_AFTER_S", 0.01)
    ids = await _runs(pool, 3)
    once = CountingPool(pool, fail=1)
    async with StartRecorder(once).running() as recorder:  # type: ignore[arg-type]
        recorder.record(ids[0], "a")
    assert await _recorded(pool, ids[:1]) == {ids[0]: "a"}  # the retry wrote it
    twice = CountingPool(pool, fail=2)
    async with StartRecorder(twice).running() as recorder:  # type: ignore[arg-type]
        recorder.record(ids[1], "b")
        await twice.next_statement()
        if twice.statements < 2:
            await twice.next_statement()
        recorder.record(ids[2], "c")  # the writer goes on after giving a batch up
    assert await _recorded(pool, ids[1:]) == {ids[1]: None, ids[2]: "c"}
