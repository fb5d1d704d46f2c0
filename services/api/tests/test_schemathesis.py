"""Property-based run of the live OpenAPI document with schemathesis: no 5xx, every answer
matches its documented schema and media type.

schemathesis is in the workspace's root dev group: a missing binary fails the test.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from stepwise_contract.enums import Role

CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


def _schemathesis() -> str | None:
    sibling = Path(sys.executable).parent / "schemathesis"
    return str(sibling) if sibling.exists() else shutil.which("schemathesis")


async def _seed(api: Any, tenant: Any) -> dict[str, str]:
    """A published workflow, a run and a pending task, so generated requests reach real rows."""
    workflow_id = await api.create_published(tenant.headers())
    run_id = (await api.launch(tenant.headers(), workflow_id, {"password": "p"}))["runId"]
    task_id = str(uuid.uuid4())
    await tenant.pool.execute(
        "INSERT INTO workflow_tasks (task_id, tenant, run_id, step_path, task_type, title, status)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'approval', 'Approve?', 'PENDING')",
        uuid.UUID(task_id), tenant.id, uuid.UUID(run_id),
    )  # fmt: skip
    return {"workflowId": workflow_id, "runId": run_id, "taskId": task_id}


async def test_no_server_errors_and_no_schema_violations(
    api: Any, app_factory: Callable[..., Any], tenant: Any, tmp_path: Path
) -> None:
    binary = _schemathesis()
    if binary is None:
        pytest.fail("schemathesis is not installed: run `uv sync` (it is in the root dev group)")
    seeded = await _seed(api, tenant)
    config = tmp_path / "schemathesis.toml"
    config.write_text(
        "[parameters]\n" + "".join(f'{name} = "{value}"\n' for name, value in seeded.items())
    )
    # A short ?wait= bound: no router runs here, and the document states the bound it enforces.
    client = await app_factory(STEPWISE_EVENT_WAIT_MAX_S="1")
    base = str(client.make_url("")).rstrip("/")
    proc = await asyncio.create_subprocess_exec(
        binary, "--config-file", str(config), "run", f"{base}/api/openapi.json",
        "--header", f"Authorization: Bearer {tenant.keys[Role.ADMIN]}",
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", "20",
        "--max-time", "30",
        "--workers", "1",
        "--seed", "7",
        "--generation-database", "none",
        "--suppress-health-check", "all",
        "--request-timeout", "10",
        "--no-color",
        "--report", "junit",
        "--report-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=150)
    text = output.decode(errors="replace")
    (tmp_path / "schemathesis.txt").write_text(text)
    assert proc.returncode == 0, text[-8000:]
