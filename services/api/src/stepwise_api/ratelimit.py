"""Per-tenant launch rate limit (`tenants.run_rate_limit_per_min`), shared by every API replica.

A fixed one-minute window per tenant lives in Postgres (`workflow_launch_rate`); each launch
attempt is one atomic upsert-increment, so N replicas together admit at most the limit per
minute. The first launch of a new window deletes the tenant's older windows (cheap housekeeping
without a job).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from stepwise_api.db import Conn

_INCREMENT = """
INSERT INTO workflow_launch_rate AS r (tenant, window_start, launches)
VALUES ($1, date_trunc('minute', now()), 1)
ON CONFLICT (tenant, window_start) DO UPDATE SET launches = r.launches + 1
RETURNING launches, window_start
"""


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    launches: int
    limit: int | None
    window_start: datetime | None

    @property
    def retry_after_s(self) -> int:
        if self.window_start is None:
            return 0
        elapsed = (datetime.now(self.window_start.tzinfo) - self.window_start).total_seconds()
        return max(1, int(60 - elapsed) + 1)


async def take_launch(conn: Conn, tenant: uuid.UUID, limit: int | None) -> RateDecision:
    """Count one launch for the tenant's current minute; `allowed` is False past the limit."""
    if limit is None:
        return RateDecision(allowed=True, launches=0, limit=None, window_start=None)
    record = await conn.fetchrow(_INCREMENT, tenant)
    assert record is not None
    launches = int(record["launches"])
    if launches == 1:
        await conn.execute(
            "DELETE FROM workflow_launch_rate WHERE tenant = $1 AND window_start < $2",
            tenant,
            record["window_start"],
        )
    return RateDecision(
        allowed=launches <= limit,
        launches=launches,
        limit=limit,
        window_start=record["window_start"],
    )
