"""`python -m stepwise_worker` as a real process: ready, runs a definition, SIGTERM exits 0."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

import asyncpg
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready
from temporalio.client import Client

from .runs import outcome, run_definition, run_row


async def test_worker_process_runs_and_stops_on_sigterm(
    pool: asyncpg.Pool,
    temporal_client: Client,
    service_env: dict[str, str],
    tenant_id: str,
    tmp_path: Path,
) -> None:
    port = free_port()
    worker = ManagedProcess(
        name="worker",
        argv=[sys.executable, "-m", "stepwise_worker"],
        log_path=tmp_path / "worker.log",
        env={**service_env, "STEPWISE_WORKER_PORT": str(port)},
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready, 30)
        steps = [
            {
                "id": "greet",
                "type": "action.call",
                "config": {
                    "actionId": "example.greet",
                    "version": 1,
                    "inputMapping": {"name": "process"},
                    "saveAs": "vars.greeting",
                },
            }
        ]
        run_id, handle = await run_definition(
            pool, temporal_client, tenant_id, {"name": "svc", "steps": steps}
        )
        assert await outcome(handle) == "completed", worker.tail()
        row = await run_row(pool, run_id)
        assert row["result_json"]["vars"]["greeting"]["message"] == "Hello, process!"

        stop_at = time.monotonic()
        status = await asyncio.to_thread(worker.stop, 20)
        stopped_in = time.monotonic() - stop_at
    finally:
        worker.kill()
    assert status == 0, worker.tail()
    assert stopped_in < 15
    events = [
        json.loads(line).get("event")
        for line in worker.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    assert "service_started" in events and events[-1] == "service_stopped", worker.tail()
