"""Event-buffer expiry: entries older than the lookback window go, recent ones stay."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from stepwise_sweeper.jobs.buffer import BufferConfig, BufferJob

INSERT_EVENTS = """
INSERT INTO workflow_recent_events (tenant, event_id, event_name, correlation_key, received_at)
SELECT $1, $2 || i, 'order.paid', 'c' || (i % 3), now() - make_interval(secs => $4)
  FROM generate_series(1, $3) AS i
"""


async def test_entries_past_the_lookback_are_dropped(pool: asyncpg.Pool) -> None:
    tenant = uuid.uuid4()
    await pool.execute(INSERT_EVENTS, tenant, "old", 45, 400.0)
    await pool.execute(INSERT_EVENTS, tenant, "recent", 15, 100.0)
    job = BufferJob(pool, BufferConfig(lookback_s=300, batch_size=10, max_batches_per_pass=10_000))

    result = await job.run_pass(asyncio.Event())

    assert result.counts["deleted"] >= 45
    left = await pool.fetch(
        "SELECT event_id FROM workflow_recent_events WHERE tenant = $1 ORDER BY event_id", tenant
    )
    assert [r["event_id"] for r in left] == sorted(f"recent{i}" for i in range(1, 16))
    await pool.execute("DELETE FROM workflow_recent_events WHERE tenant = $1", tenant)
