"""The hand-written baseline's worker, as a process of its own beside the stack's services.

Our figures are measured with the Stepwise worker in its own process, so the baseline's worker
gets one too: inside the bench process it would share one interpreter lock with the load
generator, which slows the baseline's load and defers its executions past the measured window
(a launch loop then counts starts whose runs have not run yet), neither of which happens to ours.

`python -m stepwise_devkit.bench.baseline_worker ADDRESS DATABASE_URL READY_FILE` polls the
baseline task queue until SIGTERM; it creates READY_FILE once it polls.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.temporal import connect_temporal
from temporalio.worker import Worker

from stepwise_devkit.bench.baseline import ACTIVITIES, BASELINE_TASK_QUEUE, WORKFLOWS
from stepwise_devkit.child_process import ManagedProcess


async def serve(address: str, database_url: str, ready_file: Path) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    pool = await create_pool(database_url, max_size=4)
    try:
        # the same converter as ours: a large value is claim-checked the same way
        client = await connect_temporal(address, "default", claims=PostgresClaimStore(pool))
        async with Worker(
            client, task_queue=BASELINE_TASK_QUEUE, workflows=WORKFLOWS, activities=ACTIVITIES
        ):
            await asyncio.to_thread(ready_file.touch)
            await stop.wait()
    finally:
        await pool.close()


def baseline_worker_process(home: Path, temporal_address: str, database_url: str) -> ManagedProcess:
    ready_file = home / "baseline-worker.ready"
    ready_file.unlink(missing_ok=True)
    return ManagedProcess(
        name="baseline-worker",
        argv=[
            sys.executable,
            "-m",
            "stepwise_devkit.bench.baseline_worker",
            temporal_address,
            database_url,
            str(ready_file),
        ],
        log_path=home / "logs" / "baseline-worker.log",
        ready=ready_file.exists,
    )


def main(argv: list[str]) -> int:
    address, database_url, ready_file = argv
    asyncio.run(serve(address, database_url, Path(ready_file)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
