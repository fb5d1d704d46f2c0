"""Adoption keeps apart a host table named like one of Stepwise's own tables: that list
(`STEPWISE_TABLES`) must name every table a fresh Stepwise database has beyond the reference's."""

from __future__ import annotations

import asyncpg
from stepwise_contract.platform.adoption import REFERENCE_TABLES, STEPWISE_TABLES


async def test_stepwise_tables_are_the_fresh_schema_minus_the_reference(
    pool: asyncpg.Pool,
) -> None:
    tables = {
        r["table_name"]
        for r in await pool.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    }
    own = tables - set(REFERENCE_TABLES) - {"schema_migrations"}
    assert own == set(STEPWISE_TABLES), "update adoption.STEPWISE_TABLES"
    assert set(REFERENCE_TABLES) <= tables
