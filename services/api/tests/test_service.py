"""`python -m stepwise_api` as a real process: ops routes and latency metrics, SIGTERM exits 0,
and the test-only fault hook that dies between the run row and the Temporal start."""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready


def api_process(
    tmp_path: Path, service_env: dict[str, str], **env: str
) -> tuple[ManagedProcess, str]:
    port = free_port()
    proc = ManagedProcess(
        name="api",
        argv=[sys.executable, "-m", "stepwise_api"],
        log_path=tmp_path / "api.log",
        env={**service_env, "STEPWISE_API_PORT": str(port), **env},
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    return proc, f"http://127.0.0.1:{port}"


async def test_ops_routes_metrics_and_sigterm(
    api: Any, tenant: Any, service_env: dict[str, str], events_stream: None, tmp_path: Path
) -> None:
    proc, base = api_process(tmp_path, service_env)
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 30)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as resp:
                assert resp.status == 200
            async with http.get(f"{base}/readyz") as resp:
                body = await resp.json()
                assert body["checks"] == {"postgres": "ok", "temporal": "ok", "nats": "ok"}
            async with http.get(f"{base}/api/workflow-runs", headers=tenant.headers()) as resp:
                assert resp.status == 200
            async with http.get(f"{base}/api/nope") as resp:
                assert resp.status == 404
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
        assert (
            'stepwise_api_request_duration_seconds_count{method="GET",route="/api/workflow-runs",status="200"} 1.0'
            in text
        )
        assert 'route="unmatched",status="404"' in text
    finally:
        code = await asyncio.to_thread(proc.stop)
    assert code == 0, proc.tail()


async def test_fault_hook_dies_after_the_run_row(
    api: Any,
    tenant: Any,
    service_env: dict[str, str],
    events_stream: None,
    tmp_path: Path,
    pool: asyncpg.Pool,
) -> None:
    wf = await api.create_published(tenant.headers())
    proc, base = api_process(tmp_path, service_env, STEPWISE_FAULT_CRASH_AFTER_RUN_ROW="1")
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 30)
        async with aiohttp.ClientSession() as http:
            with pytest.raises(aiohttp.ClientError):
                async with http.post(
                    f"{base}/api/workflow-runs", json={"workflowId": wf}, headers=tenant.headers()
                ) as resp:
                    await resp.read()
        assert await asyncio.to_thread(proc.proc.wait, 10) == 137  # type: ignore[union-attr]
    finally:
        await asyncio.to_thread(proc.stop)
    rows = await pool.fetch(
        "SELECT status, temporal_run_id FROM workflow_runs WHERE workflow_id = $1", uuid.UUID(wf)
    )
    # The row the sweeper's reconciliation will find: RUNNING, never started on Temporal.
    assert [(r["status"], r["temporal_run_id"]) for r in rows] == [("RUNNING", None)]
