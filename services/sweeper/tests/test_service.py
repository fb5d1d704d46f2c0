"""`python -m stepwise_sweeper` as a real process: ready on Postgres and Temporal, metrics served,
and SIGTERM in the middle of an expiry pass ends the batch and exits 0."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import asyncpg
import pytest
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready

BACKLOG = 300_000


async def test_sigterm_mid_pass_exits_cleanly(
    pool: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    tenant = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_data_store (store_id, tenant, namespace, key, value, expires_at)"
        " SELECT gen_random_uuid(), $1, 'ns', 'k' || i, '1'::jsonb, now() - interval '1 minute'"
        "   FROM generate_series(1, $2) AS i",
        tenant, BACKLOG,
    )  # fmt: skip
    port = free_port()
    env = {
        **service_env,
        "STEPWISE_SWEEPER_PORT": str(port),
        # only the expiry job, in small batches, so the pass is long enough to be interrupted
        "STEPWISE_SWEEP_EXPIRY_BATCH": "100",
        "STEPWISE_SWEEP_RECONCILE_INTERVAL_S": "0",
        "STEPWISE_SWEEP_QUOTA_INTERVAL_S": "0",
        "STEPWISE_SWEEP_BUFFER_INTERVAL_S": "0",
        "STEPWISE_SWEEP_RETENTION_INTERVAL_S": "0",
    }
    sweeper = ManagedProcess(
        name="sweeper",
        argv=[sys.executable, "-m", "stepwise_sweeper"],
        log_path=tmp_path / "sweeper.log",
        env=env,
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    sweeper.start()
    try:
        await asyncio.to_thread(sweeper.wait_ready, 30)
        metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        assert "stepwise_sweeper_quota_resumes_total" in metrics

        count = "SELECT count(*) FROM workflow_data_store WHERE tenant = $1"
        deadline = time.monotonic() + 20
        while await pool.fetchval(count, tenant) == BACKLOG:  # wait for the pass to be under way
            assert time.monotonic() < deadline, sweeper.tail()
            await asyncio.sleep(0.05)

        stop_at = time.monotonic()
        status = await asyncio.to_thread(sweeper.stop, 10)
        stopped_in = time.monotonic() - stop_at
    finally:
        sweeper.kill()
    remaining = await pool.fetchval(count, tenant)
    await pool.execute("DELETE FROM workflow_data_store WHERE tenant = $1", tenant)

    lines = [
        json.loads(line)
        for line in sweeper.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    passes = [
        line for line in lines if line.get("event") == "sweep_pass" and line.get("job") == "expiry"
    ]
    assert status == 0, sweeper.tail()
    assert stopped_in < 5
    assert 0 < remaining < BACKLOG, "stopped in the middle of the backlog"
    assert passes and passes[-1]["stopped_early"] is True, sweeper.tail()
    assert passes[-1]["deleted"] > 0
    assert passes[-1]["deleted"] >= BACKLOG - remaining
    assert [line["event"] for line in lines][-1] == "service_stopped"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def test_expiry_runs_while_temporal_is_down(
    pool: asyncpg.Pool, service_env: dict[str, str], tmp_path: Path
) -> None:
    tenant = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_data_store (store_id, tenant, namespace, key, value, expires_at)"
        " SELECT gen_random_uuid(), $1, 'ns', 'k' || i, '1'::jsonb, now() - interval '1 minute'"
        "   FROM generate_series(1, 50) AS i",
        tenant,
    )
    port = free_port()
    sweeper = ManagedProcess(
        name="sweeper",
        argv=[sys.executable, "-m", "stepwise_sweeper"],
        log_path=tmp_path / "sweeper.log",
        env={
            **service_env,
            "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
            "STEPWISE_SWEEPER_PORT": str(port),
            # the database is shared with other suites: leave their runs alone
            "STEPWISE_SWEEP_RECONCILE_INTERVAL_S": "0",
            "STEPWISE_SWEEP_QUOTA_INTERVAL_S": "0",
            "STEPWISE_SWEEP_RETENTION_INTERVAL_S": "0",
        },
        ready=http_ready(f"http://127.0.0.1:{port}/healthz"),
    )
    sweeper.start()
    try:
        await asyncio.to_thread(sweeper.wait_ready, 30)
        deadline = time.monotonic() + 20
        count = "SELECT count(*) FROM workflow_data_store WHERE tenant = $1"
        while await pool.fetchval(count, tenant):
            assert time.monotonic() < deadline, sweeper.tail()
            await asyncio.sleep(0.1)
        with pytest.raises(urllib.error.HTTPError) as not_ready:
            await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/readyz")
        assert not_ready.value.code == 503
        checks = json.loads(not_ready.value.read())["checks"]
        assert checks["postgres"] == "ok" and checks["temporal"] != "ok"
        status = await asyncio.to_thread(sweeper.stop, 10)
    finally:
        sweeper.kill()
    assert status == 0, sweeper.tail()
