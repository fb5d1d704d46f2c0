"""Router processes (`python -m stepwise_router`) on the shared durable consumer: two replicas never
process an event twice; SIGTERM finishes what is in flight and exits 0; SIGKILL loses nothing."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from stepwise_contract import names
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready

pytestmark = pytest.mark.asyncio(loop_scope="session")


def router_process(
    tmp_path: Path, service_env: dict[str, str], name: str, **env: str
) -> ManagedProcess:
    port = free_port()
    return ManagedProcess(
        name=name,
        argv=[sys.executable, "-m", "stepwise_router"],
        log_path=tmp_path / f"{name}.log",
        env={**service_env, "STEPWISE_ROUTER_PORT": str(port), **env},
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )


async def start(proc: ManagedProcess) -> ManagedProcess:
    proc.start()
    await asyncio.to_thread(proc.wait_ready, 60)
    return proc


def routed_event_ids(proc: ManagedProcess, tenant: str) -> list[str]:
    """Event ids this process logged as routed (one log line per processed event)."""
    ids = []
    for line in proc.log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if (
            entry.get("event") == "event_routed"
            and entry.get("tenant") == tenant
            and entry.get("outcome") == "routed"
        ):
            ids.append(entry["event_id"])
    return ids


async def waiting_runs(bus: Any, recorder: Any, tenant: str, count: int) -> list[uuid.UUID]:
    runs = [uuid.uuid4() for _ in range(count)]
    for i, run_id in enumerate(runs):
        await recorder.start(run_id)
        await bus.insert_wait(tenant, run_id, "STREAM", f"k{i}")
    return runs


async def publish_stream(bus: Any, tenant: str, count: int, runs: int) -> dict[str, int]:
    """`count` events, event i for run i % runs; returns event id → run index."""
    targets = {}
    for i in range(count):
        event_id = await bus.publish(tenant, "STREAM", {"ticketId": f"k{i % runs}", "i": i})
        targets[event_id] = i % runs
    return targets


async def signals_by_event(recorder: Any, runs: list[uuid.UUID]) -> dict[str, list[int]]:
    """event id → indexes of the runs that received it (once per receipt)."""
    got: dict[str, list[int]] = {}
    for index, run_id in enumerate(runs):
        for event in (await recorder.received(run_id)).events:
            got.setdefault(event.event_id, []).append(index)
    return got


async def test_two_routers_on_one_consumer_never_process_an_event_twice(
    tmp_path: Path, service_env: dict[str, str], bus: Any, recorder: Any, tenant_id: str
) -> None:
    runs = await waiting_runs(bus, recorder, tenant_id, 4)
    env = {"STEPWISE_ROUTER_CONCURRENCY": "4", "STEPWISE_ROUTER_BATCH": "2"}
    a, b = await asyncio.gather(
        start(router_process(tmp_path, service_env, "router-a", **env)),
        start(router_process(tmp_path, service_env, "router-b", **env)),
    )
    try:
        targets = await publish_stream(bus, tenant_id, 200, len(runs))
        await bus.all_processed(tenant_id, 200)
        await bus.consumer_settled(bus.last_seq)
    finally:
        codes = await asyncio.gather(asyncio.to_thread(a.stop), asyncio.to_thread(b.stop))
    assert list(codes) == [0, 0]

    by_a, by_b = routed_event_ids(a, tenant_id), routed_event_ids(b, tenant_id)
    assert by_a and by_b, "both replicas should have taken part"
    assert Counter(by_a + by_b) == Counter(targets.keys())  # each event routed exactly once
    got = await signals_by_event(recorder, runs)
    assert got == {event_id: [run] for event_id, run in targets.items()}


async def test_stopped_routers_lose_no_event_sigterm_finishes_in_flight_sigkill_redelivers(
    tmp_path: Path, service_env: dict[str, str], bus: Any, recorder: Any, tenant_id: str
) -> None:
    runs = await waiting_runs(bus, recorder, tenant_id, 3)
    # a short ack wait, so the killed router's unacked messages come back quickly
    env = {"STEPWISE_ROUTER_CONCURRENCY": "2", "STEPWISE_ROUTER_ACK_WAIT_S": "2"}
    tenant = uuid.UUID(tenant_id)

    async def processed() -> int:
        count: int = await bus.pool.fetchval(
            "SELECT count(*) FROM workflow_runtime_events"
            " WHERE tenant = $1 AND processed_at IS NOT NULL",
            tenant,
        )
        return count

    first = await start(router_process(tmp_path, service_env, "router-term", **env))
    targets = await publish_stream(bus, tenant_id, 300, len(runs))
    await bus.eventually(lambda: _at_least(processed, 30), within=30, what="30 events processed")
    assert await asyncio.to_thread(first.stop) == 0  # SIGTERM: graceful
    info = await bus.js.consumer_info(names.EVENTS_STREAM, names.EVENTS_CONSUMER)
    assert info.num_ack_pending == 0  # nothing left in flight for the ack wait to recover
    unfinished = await bus.pool.fetchval(
        "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1 AND processed_at IS NULL",
        tenant,
    )
    assert unfinished == 0
    after_term = await processed()
    assert after_term < 300, "the stream should still have had work when the router stopped"

    second = await start(router_process(tmp_path, service_env, "router-kill", **env))
    await bus.eventually(
        lambda: _at_least(processed, after_term + 30), within=30, what="30 more events processed"
    )
    second.kill()  # SIGKILL mid-stream: no cleanup, in-flight messages unacked
    assert await processed() < 300, "the stream should still have had work when it was killed"

    third = await start(router_process(tmp_path, service_env, "router-last", **env))
    try:
        await bus.all_processed(tenant_id, 300, within=90)
        await bus.consumer_settled(bus.last_seq, within=30)
    finally:
        assert await asyncio.to_thread(third.stop) == 0

    got = await signals_by_event(recorder, runs)
    assert set(got) == set(targets)  # every event reached its run
    for event_id, receivers in got.items():
        assert set(receivers) == {targets[event_id]}
    # only messages in flight at the SIGKILL (concurrency 2) may have been signalled twice
    assert sum(len(r) - 1 for r in got.values()) <= 2


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)
