"""The request log line carries the run (or event) the path names, with the caller's tenant."""

from __future__ import annotations

import uuid
from typing import Any

import structlog


async def test_request_line_names_the_run(api: Any, tenant: Any) -> None:
    run_id = str(uuid.uuid4())
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        resp = await api.get(f"/api/workflow-runs/{run_id}", headers=tenant.headers())
        assert resp.status == 404
        resp = await api.get("/api/workflow-runs", headers=tenant.headers())
        assert resp.status == 200
    lines = [line for line in logs if line["event"] == "request"]
    one, listed = (
        next(line for line in lines if line["route"] == route)
        for route in ("/api/workflow-runs/{runId}", "/api/workflow-runs")
    )
    assert (one["run_id"], one["tenant"], one["status"]) == (run_id, str(tenant.id), 404)
    assert "run_id" not in listed and listed["tenant"] == str(tenant.id)
