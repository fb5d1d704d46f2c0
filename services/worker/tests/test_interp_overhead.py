"""Per-step overhead of the interpreter vs hand-written workflows (SPEC §11) — a measurement,
printed, never a timed assertion: a 10-step `core.echo` definition against the same 10 echo
activities hand-written as regular and as local activities, on the same dev server and worker
settings. Run with `-s` to see the table."""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import pytest
from stepwise_contract.names import DEFAULT_EXECUTION_TIMEOUT_S, RUN_COMMANDS, workflow_id_for
from stepwise_contract.payloads import RunInput
from stepwise_contract.platform.launch import NewRun, insert_run, launch
from stepwise_contract.priority import DEFAULT_FAIRNESS_WEIGHT, DEFAULT_PRIORITY, run_priority
from stepwise_devkit.bench.baseline import ACTIVITIES, BASELINE_TASK_QUEUE, WORKFLOWS
from stepwise_worker.worker import workflow_runner
from temporalio.client import Client
from temporalio.worker import Worker

from .runs import publish_definition, run_row, running_worker

STEPS = 10
RUNS = 5  # a printed measurement: `make bench` measures this figure at full size


@pytest.fixture(scope="module")
async def workers(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[None]:
    baseline = Worker(
        temporal_client,
        task_queue=BASELINE_TASK_QUEUE,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        workflow_runner=workflow_runner(),
    )
    async with running_worker(temporal_client, pool), baseline:
        yield


async def test_step_overhead(
    workers: None, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    definition = {
        "name": "bench",
        "steps": [
            {
                "id": f"s{i}",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": i},
                    "saveAs": f"vars.s{i}",
                },
            }
            for i in range(STEPS)
        ],
    }
    workflow_id, version, digest = await publish_definition(pool, tenant_id, definition)

    async def ours() -> float:
        run_id = uuid.uuid4()
        await insert_run(
            pool,
            NewRun(
                run_id=run_id,
                tenant=uuid.UUID(tenant_id),
                workflow_id=uuid.UUID(workflow_id),
                workflow_version=version,
                input_json={},
                definition_hash=digest,
            ),
        )
        started = time.perf_counter()
        await launch(
            pool,
            temporal_client,
            RunInput(
                run_id=str(run_id),
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                workflow_version=version,
                commands=RUN_COMMANDS,
            ),
            run_priority(
                tenant=tenant_id, priority=DEFAULT_PRIORITY, fairness_weight=DEFAULT_FAIRNESS_WEIGHT
            ),
        )
        await temporal_client.get_workflow_handle(workflow_id_for(str(run_id))).result()
        elapsed = time.perf_counter() - started
        assert (await run_row(pool, str(run_id)))["status"] == "SUCCEEDED"
        return elapsed

    async def baseline(workflow: str) -> float:
        started = time.perf_counter()
        result = await temporal_client.execute_workflow(
            workflow,
            1,
            id=f"bench-{uuid.uuid4()}",
            task_queue=BASELINE_TASK_QUEUE,
            execution_timeout=timedelta(seconds=DEFAULT_EXECUTION_TIMEOUT_S),
        )
        assert result == {"value": 1}
        return time.perf_counter() - started

    await ours(), await baseline("BenchRegular10"), await baseline("BenchLocal10")  # warm up
    samples: dict[str, list[float]] = {"ours": [], "regular": [], "local": []}
    for _ in range(RUNS):  # interleaved, so drift hits all three alike
        samples["ours"].append(await ours())
        samples["regular"].append(await baseline("BenchRegular10"))
        samples["local"].append(await baseline("BenchLocal10"))
    median = {name: statistics.median(values) * 1000 for name, values in samples.items()}
    print(f"\n{STEPS}-step core.echo, median of {RUNS} runs (ms)")
    print(f"{'figure':<28}{'ours':>8}{'baseline':>10}{'ratio':>8}")
    for name in ("regular", "local"):
        print(
            f"{'step_overhead_vs_' + name:<28}{median['ours']:>8.1f}{median[name]:>10.1f}{median['ours'] / median[name]:>8.2f}"
        )
