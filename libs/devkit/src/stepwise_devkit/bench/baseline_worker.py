"""The hand-written baseline's worker, as a process of its own beside the stack's services.

Our figures are measured with the Stepwise worker in its own process, so the baseline's worker
gets one too: inside the bench process it would share one interpreter lock with the load
generator, which slows the baseline's load and defers its executions past the measured window
(a launch loop then counts starts whose runs have not run yet), neither of which happens to ours.

`python -m stepwise_devkit.bench.baseline_worker ADDRESS DATABASE_URL READY_FILE [--task-queue Q]
[--workflow-task-slots N]` polls the queue until SIGTERM; it creates READY_FILE once it polls.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.temporal import connect_temporal
from temporalio.worker import Worker

from stepwise_devkit.bench.baseline import ACTIVITIES, BASELINE_TASK_QUEUE, WORKFLOWS
from stepwise_devkit.child_process import ManagedProcess


async def serve(
    address: str, database_url: str, ready_file: Path, task_queue: str, slots: int | None
) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = await create_pool(database_url, max_size=4)
    try:
        # the same converter as ours: a large value is claim-checked the same way
        client = await connect_temporal(address, "default", claims=PostgresClaimStore(pool))
        async with Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=ACTIVITIES,
            max_concurrent_workflow_tasks=slots,  # None: the SDK's default
        ):
            await asyncio.to_thread(ready_file.touch)
            await stop.wait()
    finally:
        await pool.close()


@dataclass
class BaselineWorker:
    """The process, and its ready file (removed before each start, so a restart waits for the new
    process to poll rather than trusting the last one's file)."""

    process: ManagedProcess
    ready_file: Path

    def start(self, timeout_s: float = 60.0) -> None:
        self.ready_file.unlink(missing_ok=True)
        self.process.start().wait_ready(timeout_s)

    def stop(self) -> None:
        self.process.stop()


def baseline_worker_process(
    home: Path,
    temporal_address: str,
    database_url: str,
    *,
    task_queue: str = BASELINE_TASK_QUEUE,
    workflow_task_slots: int | None = None,
) -> BaselineWorker:
    """A worker of the hand-written workflows on `task_queue`; `workflow_task_slots` None keeps
    the SDK's default."""
    name = "baseline-worker" if task_queue == BASELINE_TASK_QUEUE else f"worker-{task_queue}"
    ready_file = home / f"{name}.ready"
    argv = [
        sys.executable,
        "-m",
        "stepwise_devkit.bench.baseline_worker",
        temporal_address,
        database_url,
        str(ready_file),
        "--task-queue",
        task_queue,
    ]
    if workflow_task_slots is not None:
        argv += ["--workflow-task-slots", str(workflow_task_slots)]
    process = ManagedProcess(
        name=name, argv=argv, log_path=home / "logs" / f"{name}.log", ready=ready_file.exists
    )
    return BaselineWorker(process, ready_file)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="baseline_worker")
    parser.add_argument("address")
    parser.add_argument("database_url")
    parser.add_argument("ready_file", type=Path)
    parser.add_argument("--task-queue", default=BASELINE_TASK_QUEUE)
    parser.add_argument("--workflow-task-slots", type=int, default=None)
    args = parser.parse_args(argv)
    asyncio.run(
        serve(
            args.address,
            args.database_url,
            args.ready_file,
            args.task_queue,
            args.workflow_task_slots,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
