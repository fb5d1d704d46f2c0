"""The SPEC §11 measurements, each beside its baseline measured the same way in the same run.

Ours goes through the public interfaces of a running stack (HTTP launch, NATS publish) and is
observed through Temporal and the projections; the baseline does the same work directly on
Temporal with the hand-written workflows of `baseline.py` (the physical floor of this design).

Method notes (they decide what the numbers mean):
- Step overhead compares execution times as Temporal records them (start → close of the
  workflow execution), interleaving ours and both baselines so machine drift hits all alike.
- Large payloads: the same 10-step echo carrying a 1 MB value through every step (input and
  output of each action), ours (the claim-check codec keeps the history to references) against
  ten local activities passing the same value inline; per step. The plain local baseline cannot
  carry it: its ten 1 MB results leave in one workflow task completion, over gRPC's 4 MB, and
  Temporal terminates the workflow (`GrpcMessageTooLarge`). `BenchLocalLarge10` therefore ends
  the workflow task after each local activity (a 1 ms timer), one 1 MB marker per completion.
- Launch has two parts: capacity (closed loop, `concurrency` clients back to back) and latency
  at the target rate (open loop at `rate`/s → p99). Capacity is sustained: the runs launched in
  the loop divided by the time from the loop's start until the last of them ended. The runs
  execute on the same cores as the launches, and a side whose executions fall behind during the
  loop spends more of it on launching and leaves the rest as a backlog; counting only the loop
  (its intake, reported too) credits that side with capacity it borrowed from after the loop.
  A closed loop cannot show both targets at once: by Little's law 32 clients at 200/s wait
  160 ms on average. Open-loop
  latencies count from each request's scheduled send time, so a server that falls behind is
  charged for the queueing it causes (no coordinated omission).
- Event routing parks `waiting` runs on `event.wait` (each its own key), then a burst of events
  (throughput: events / (last resume - first publish)) and a paced stream (latency: publish →
  the wait row RESOLVED, written by the worker once the signal reached the run).
- The sweeper figure is the p99 latency of the worker's own `store.set` action (its handler and
  statement, called in this process on the bench's pool) issued back to back while the sweeper
  deletes the expired rows, some of which the writer revives meanwhile (row-lock contention with
  the delete batches), against the same writer with nothing to sweep.
- A figure whose `ok` is None is information: its baseline does different work from ours, so no
  target applies (the regular-activity step baseline: our steps are local activities).
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from stepwise_contract.names import workflow_id_for
from stepwise_worker.actions.base import ActionContext
from stepwise_worker.actions.store import store_set
from temporalio.client import Client, WorkflowHandle

from stepwise_devkit.bench.baseline import BASELINE_TASK_QUEUE, STEPS
from stepwise_devkit.bench.machine_cpu import busy_seconds, per_item_ms
from stepwise_devkit.stack_client import EventPublisher, StackApi


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    ours: float
    baseline: float
    unit: str
    target: str
    # None: information only, the baseline is not the same work, so there is nothing to pass
    ok: bool | None
    # A goal on the ratio to the hand-written baseline measured in the same run, for figures whose
    # absolute target the Temporal server itself caps on a small machine ("" when there is none):
    # "<= 1.25" or ">= 0.8".
    ratio_goal: str = ""

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else float("inf")

    @property
    def ratio_ok(self) -> bool | None:
        if not self.ratio_goal:
            return None
        op, bound = self.ratio_goal.split()
        return self.ratio <= float(bound) if op == "<=" else self.ratio >= float(bound)

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ours": round(self.ours, 3),
            "baseline": round(self.baseline, 3),
            "unit": self.unit,
            "ratio": round(self.ratio, 3),
            "target": self.target,
            "ok": self.ok,
            "ratio_goal": self.ratio_goal or None,
            "ratio_ok": self.ratio_ok,
        }


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def note(message: str) -> None:
    print(f"bench:   {message}", flush=True)


def echo_definition(name: str) -> dict[str, Any]:
    steps = [
        {
            "id": f"s{i}",
            "type": "action.call",
            "config": {
                "actionId": "core.echo",
                "version": 1,
                "inputMapping": {"value": {"$expr": "payload.n"}},
                "saveAs": f"vars.out{i}",
            },
        }
        for i in range(STEPS)
    ]
    return {"name": name, "steps": steps}


def wait_definition(name: str, event_name: str) -> dict[str, Any]:
    return {
        "name": name,
        "steps": [
            {
                "id": "w",
                "type": "event.wait",
                "config": {
                    "eventName": event_name,
                    "correlationKey": {"$expr": "payload.key"},
                    "timeoutMs": 3_600_000,
                },
            },
            {"id": "done", "type": "state.set", "config": {"state": "resumed"}},
        ],
    }


async def _execution_s(handle: WorkflowHandle[Any, Any]) -> float:
    """Start → close of a finished workflow execution, as Temporal recorded it."""
    described = await handle.describe()
    assert described.close_time is not None
    return (described.close_time - described.start_time).total_seconds()


@dataclass(frozen=True, slots=True)
class Overhead:
    ours_ms: float
    regular_ms: float
    local_ms: float
    ours_end_to_end_ms: float


async def step_overhead(api: StackApi, client: Client, runs: int) -> Overhead:
    """Median execution ms of a 10-step core.echo run: ours, regular and local baselines."""
    workflow_id = await api.publish_definition(
        echo_definition(f"bench-echo-{uuid.uuid4().hex[:6]}")
    )
    end_to_end: list[float] = []

    async def ours() -> float:
        started = time.perf_counter()
        run_id = await api.launch(workflow_id, {"n": 1})
        handle = client.get_workflow_handle(workflow_id_for(run_id))
        await handle.result()
        end_to_end.append(time.perf_counter() - started)
        return await _execution_s(handle)

    async def baseline(kind: str) -> float:
        handle = await client.start_workflow(
            kind, 1, id=f"bench-{kind}-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
        )
        await handle.result()
        return await _execution_s(handle)

    # warm up every path (first workflow task, sandbox, pools, prepared statements)
    await ours(), await baseline("BenchRegular10"), await baseline("BenchLocal10")
    end_to_end.clear()
    samples: dict[str, list[float]] = {"ours": [], "regular": [], "local": []}
    for _ in range(runs):  # interleaved: drift of a shared machine hits all three alike
        samples["ours"].append(await ours())
        samples["regular"].append(await baseline("BenchRegular10"))
        samples["local"].append(await baseline("BenchLocal10"))
    ms = {k: statistics.median(v) * 1000 for k, v in samples.items()}
    return Overhead(ms["ours"], ms["regular"], ms["local"], statistics.median(end_to_end) * 1000)


# five parts of 200 KB: each part is one expression result, under the 256 KiB cap
LARGE_PARTS = 5
LARGE_PART_BYTES = 200_000


def large_value() -> dict[str, str]:
    return {f"p{i}": chr(ord("a") + i) * LARGE_PART_BYTES for i in range(LARGE_PARTS)}


def large_definition(name: str) -> dict[str, Any]:
    """10 steps, each echoing the whole value (read from the previous step's output). Two
    variables alternate, so the run's state holds ~3 MB, inside the 10 MiB run-state cap."""
    steps = []
    for i in range(STEPS):
        source = "payload" if i == 0 else f"vars.out{(i - 1) % 2}.value"
        parts = {f"p{k}": {"$expr": f"{source}.p{k}"} for k in range(LARGE_PARTS)}
        steps.append(
            {
                "id": f"s{i}",
                "type": "action.call",
                "config": {"actionId": "core.echo", "version": 1,
                           "inputMapping": {"value": parts}, "saveAs": f"vars.out{i % 2}"},
            }
        )  # fmt: skip
    return {"name": name, "steps": steps}


async def large_payload_steps(
    api: StackApi, client: Client, runs: int, *, warm_up: bool = True
) -> tuple[float, float]:
    """Median execution ms per step of a 10-step run carrying 1 MB: (ours, local baseline), after
    one run of each that is not counted (`warm_up`)."""
    workflow_id = await api.publish_definition(
        large_definition(f"bench-large-{uuid.uuid4().hex[:6]}")
    )
    value = large_value()

    async def ours() -> float:
        run_id = await api.launch(workflow_id, value)
        handle = client.get_workflow_handle(workflow_id_for(run_id))
        result = await handle.result()
        assert result["vars"][f"out{(STEPS - 1) % 2}"]["value"] == value, "the value went through"
        return await _execution_s(handle)

    async def baseline() -> float:
        handle = await client.start_workflow(
            "BenchLocalLarge10",
            value,
            id=f"bench-large-{uuid.uuid4()}",
            task_queue=BASELINE_TASK_QUEUE,
        )
        await handle.result()
        return await _execution_s(handle)

    if warm_up:
        await ours(), await baseline()
    samples: dict[str, list[float]] = {"ours": [], "local": []}
    for _ in range(runs):  # interleaved
        samples["ours"].append(await ours())
        samples["local"].append(await baseline())
    per_step = {k: statistics.median(v) * 1000 / STEPS for k, v in samples.items()}
    return per_step["ours"], per_step["local"]


async def closed_loop(
    make: Callable[[], Awaitable[Any]], seconds: float, concurrency: int
) -> tuple[float, list[float], list[Any]]:
    """`concurrency` clients calling `make` back to back for `seconds`: (per second, latencies,
    results)."""
    latencies: list[float] = []
    results: list[Any] = []
    deadline = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            results.append(await make())
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - started), latencies, results


async def _open_loop(
    make: Callable[[], Awaitable[Any]], rate: float, seconds: float
) -> tuple[float, list[float], list[Any]]:
    """Calls sent at a fixed `rate` for `seconds`, whatever the answers' pace: (completed per
    second, latencies from each call's scheduled time, results)."""
    count = max(1, round(rate * seconds))
    interval = 1.0 / rate
    latencies: list[float] = []
    results: list[Any] = []

    async def one(scheduled: float) -> None:
        results.append(await make())
        latencies.append(time.perf_counter() - scheduled)

    tasks = []
    started = time.perf_counter()
    for i in range(count):
        scheduled = started + i * interval
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    return count / (time.perf_counter() - started), latencies, results


@dataclass(frozen=True, slots=True)
class Launches:
    # launched in the closed loop ÷ (loop start → the last of those runs ended)
    per_s: float
    base_per_s: float
    # the same runs ÷ the loop's own seconds
    intake_per_s: float
    base_intake_per_s: float
    p99_ms: float
    base_p99_ms: float
    half_p99_ms: float  # at half the rate
    base_half_p99_ms: float
    rate: float
    achieved: float
    base_achieved: float
    # machine CPU per launched run, launch to the run's end (every process; machine_cpu.py)
    cpu_ms: float
    base_cpu_ms: float


async def drained(pool: asyncpg.Pool, workflow_id: str, timeout_s: float) -> None:
    """Wait until no run of the workflow is RUNNING (the next phase starts on a quiet worker)."""

    async def running() -> int:
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1 AND status = 'RUNNING'",
                uuid.UUID(workflow_id),
            )
        )

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not await running():
            return
        await asyncio.sleep(0.5)


async def all_closed(handles: list[WorkflowHandle[Any, Any]], timeout_s: float) -> None:
    """Every workflow's result awaited, 64 at a time, within `timeout_s` in all."""
    sem = asyncio.Semaphore(64)

    async def one(handle: WorkflowHandle[Any, Any]) -> None:
        async with sem:
            await handle.result()

    await asyncio.wait_for(asyncio.gather(*(one(h) for h in handles)), timeout_s)


async def launches(
    api: StackApi,
    client: Client,
    pool: asyncpg.Pool,
    seconds: float,
    concurrency: int,
    rate: float,
) -> Launches:
    """Launch capacity (closed loop) and p99 at `rate`/s (open loop), through the API and as raw
    Temporal starts of a no-op hand-written workflow."""
    definition = {
        "name": f"bench-launch-{uuid.uuid4().hex[:6]}",
        "steps": [{"id": "s", "type": "state.set", "config": {"state": "x"}}],
    }
    workflow_id = await api.publish_definition(definition)

    async def ours() -> str:
        return await api.launch(workflow_id, {})

    async def base() -> WorkflowHandle[Any, Any]:
        return await client.start_workflow(
            "BenchNoop", id=f"bench-start-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
        )

    drain_s = 60 + rate * seconds / 5
    cpu_before = busy_seconds()
    started = time.time()
    intake_per_s, _, launched = await closed_loop(ours, seconds, concurrency)
    await drained(pool, workflow_id, drain_s)
    ended = await pool.fetchval(
        "SELECT max(completed_at) FROM workflow_runs WHERE run_id = ANY($1::uuid[])", launched
    )
    if ended is None:
        raise RuntimeError("no run launched in the closed loop ended")
    per_s = len(launched) / (_epoch(ended) - started)
    cpu_ms = per_item_ms(cpu_before, busy_seconds(), len(launched))
    note(
        f"launch capacity through the API, {concurrency} clients: {intake_per_s:.0f}/s during the"
        f" loop, {per_s:.0f}/s sustained (until the last launched run ended)"
    )
    cpu_before = busy_seconds()
    started = time.time()
    base_intake_per_s, _, handles = await closed_loop(base, seconds, concurrency)
    await all_closed(handles, drain_s)
    base_per_s = len(handles) / (time.time() - started)
    base_cpu_ms = per_item_ms(cpu_before, busy_seconds(), len(handles))
    note(
        f"raw Temporal start capacity: {base_intake_per_s:.0f}/s during the loop,"
        f" {base_per_s:.0f}/s sustained"
    )
    note(f"machine CPU per launched run: {cpu_ms:.1f} ms; per raw no-op run: {base_cpu_ms:.1f} ms")
    achieved, latencies, _ = await _open_loop(ours, rate, seconds)
    note(f"API at {rate:.0f}/s offered: {achieved:.0f}/s completed")
    await drained(pool, workflow_id, drain_s)
    base_achieved, base_latencies, handles = await _open_loop(base, rate, seconds)
    await all_closed(handles, drain_s)
    # On a machine where `rate` is at the edge of what the Temporal server accepts, its p99 is
    # queueing; half the rate shows what a launch itself costs.
    _, half_latencies, _ = await _open_loop(ours, rate / 2, seconds)
    await drained(pool, workflow_id, drain_s)
    _, base_half_latencies, handles = await _open_loop(base, rate / 2, seconds)
    await all_closed(handles, drain_s)
    note(
        f"p99 at {rate / 2:.0f}/s offered: API {percentile(half_latencies, 0.99) * 1000:.0f} ms,"
        f" raw starts {percentile(base_half_latencies, 0.99) * 1000:.0f} ms"
    )
    return Launches(
        per_s=per_s,
        base_per_s=base_per_s,
        intake_per_s=intake_per_s,
        base_intake_per_s=base_intake_per_s,
        p99_ms=percentile(latencies, 0.99) * 1000,
        base_p99_ms=percentile(base_latencies, 0.99) * 1000,
        half_p99_ms=percentile(half_latencies, 0.99) * 1000,
        base_half_p99_ms=percentile(base_half_latencies, 0.99) * 1000,
        rate=rate,
        achieved=achieved,
        base_achieved=base_achieved,
        cpu_ms=cpu_ms,
        base_cpu_ms=base_cpu_ms,
    )


async def wait_for(
    check: Callable[[], Awaitable[int]],
    target: int,
    timeout_s: float,
    what: str,
    interval_s: float = 0.25,
) -> None:
    deadline = time.monotonic() + timeout_s
    last_note = time.monotonic()
    while True:
        done = await check()
        if done >= target:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"bench: timed out waiting for {what} ({done}/{target})")
        if time.monotonic() - last_note > 15:
            note(f"{what}: {done}/{target}")
            last_note = time.monotonic()
        await asyncio.sleep(interval_s)


# Between an event burst and the paced stream after it, on both sides: the Temporal server's own
# work on the burst's 2,000 closed runs (transfer and visibility tasks) runs on after they close,
# and a latency figure is not meant to measure that tail.
SETTLE_S = 2.0


@dataclass(frozen=True, slots=True)
class Routing:
    per_s: float
    base_per_s: float
    p50_ms: float
    base_p50_ms: float


def _epoch(value: datetime) -> float:
    return value.timestamp()


@dataclass(frozen=True, slots=True)
class ParkedRuns:
    """Runs of one `wait_definition` workflow, each parked on `event.wait` with its own key."""

    workflow_id: str
    event_name: str
    keys: tuple[str, ...]

    async def ended(self, pool: asyncpg.Pool) -> int:
        """How many of the runs have ended (their last step and the run's completion done)."""
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM workflow_runs WHERE workflow_id = $1"
                " AND status IN ('SUCCEEDED', 'FAILED', 'CANCELED')",
                uuid.UUID(self.workflow_id),
            )
        )

    async def waits(self, pool: asyncpg.Pool, status: str) -> int:
        """How many of the runs' waits are in `status` (WAITING, RESOLVED…)."""
        return int(
            await pool.fetchval(
                "SELECT count(*) FROM workflow_run_waits w JOIN workflow_runs r USING (run_id)"
                " WHERE r.workflow_id = $1 AND w.status = $2",
                uuid.UUID(self.workflow_id),
                status,
            )
        )


async def park_runs(api: StackApi, pool: asyncpg.Pool, waiting: int) -> ParkedRuns:
    """Publish a fresh `wait_definition` and launch `waiting` runs of it (16 at a time, keys
    `k0`, `k1`…); returns once every run's wait is WAITING."""
    event_name = f"BENCH_{uuid.uuid4().hex[:8].upper()}"
    workflow_id = await api.publish_definition(
        wait_definition(f"bench-wait-{event_name}", event_name)
    )
    parked = ParkedRuns(workflow_id, event_name, tuple(f"k{i}" for i in range(waiting)))
    sem = asyncio.Semaphore(16)
    started = time.perf_counter()

    async def park(key: str) -> None:
        async with sem:
            await api.launch(workflow_id, {"key": key})

    await asyncio.gather(*(park(k) for k in parked.keys))
    note(f"{waiting} runs launched in {time.perf_counter() - started:.0f}s")
    await wait_for(
        lambda: parked.waits(pool, "WAITING"),
        waiting,
        120 + waiting / 5,
        "runs parked on event.wait",
    )
    note(f"{waiting} runs waiting after {time.perf_counter() - started:.0f}s")
    return parked


async def route_burst(
    pool: asyncpg.Pool, publisher: EventPublisher, parked: ParkedRuns, keys: tuple[str, ...]
) -> float:
    """Events routed per second: one event per key of `keys` published at once (16 in flight),
    from the first publish to the router's `processed_at` of the last one; an event counts once
    the router recorded a signalled run on it (publish → signal delivered, as SPEC §11 defines
    "routed")."""
    sem = asyncio.Semaphore(16)
    event_ids: list[str] = []

    async def publish(key: str) -> None:
        async with sem:
            event_ids.append(await publisher.publish(parked.event_name, {"key": key}, key=key))

    async def routed() -> list[float]:
        rows = await pool.fetch(
            "SELECT processed_at FROM workflow_runtime_events WHERE event_id = ANY($1::text[])"
            " AND processed_at IS NOT NULL AND cardinality(signaled_run_ids) > 0",
            event_ids,
        )
        return [_epoch(r["processed_at"]) for r in rows]

    async def routed_count() -> int:
        return len(await routed())

    first = time.time()
    await asyncio.gather(*(publish(k) for k in keys))
    await wait_for(
        routed_count, len(keys), 60 + len(keys) / 5, "burst events routed (signal delivered)"
    )
    return len(keys) / max(max(await routed()) - first, 1e-6)


async def event_routing(
    api: StackApi,
    client: Client,
    pool: asyncpg.Pool,
    publisher: EventPublisher,
    waiting: int,
    burst: int,
    paced: int,
    paced_rate: float,
) -> Routing:
    """Events routed per second (a burst; publish → signal delivered, as SPEC §11 defines it) and
    p50 publish→resume ms (a paced stream: the run's wait resolved by the worker) with `waiting`
    runs parked on event.wait; the baseline signals parked hand-written workflows straight from a
    Temporal client (delivered = the signal RPC answered; resumed = the waiter closed)."""
    assert burst + paced <= waiting
    # the baseline first, on a quiet system, with as many hand-written waiters parked as ours
    base_per_s, base_p50 = await _signal_baseline(client, waiting, burst, paced, paced_rate)
    parked = await park_runs(api, pool, waiting)
    per_s = await route_burst(pool, publisher, parked, parked.keys[:burst])
    await wait_for(
        lambda: parked.waits(pool, "RESOLVED"), burst, 60 + burst / 5, "burst events resuming runs"
    )
    # the paced stream starts on a settled system, as the baseline's does: the burst's runs ended
    # (a resumed run still has a step and its completion to go) and the server's tail of them done
    await wait_for(lambda: parked.ended(pool), burst, 60 + burst / 5, "burst runs ending")
    await asyncio.sleep(SETTLE_S)

    # paced: latency, publish → the run's wait RESOLVED (written by the worker)
    paced_keys = parked.keys[burst : burst + paced]
    published: dict[str, float] = {}

    async def publish(key: str) -> None:
        published[key] = time.time()
        await publisher.publish(parked.event_name, {"key": key}, key=key)

    for key in paced_keys:
        asyncio.create_task(publish(key))  # noqa: RUF006 - awaited below through the resumes
        await asyncio.sleep(1.0 / paced_rate)
    await wait_for(
        lambda: parked.waits(pool, "RESOLVED"),
        burst + paced,
        60 + paced,
        "paced events resuming runs",
    )
    rows = await pool.fetch(
        "SELECT r.input_json->>'key' AS key, w.resolved_at"
        " FROM workflow_run_waits w JOIN workflow_runs r USING (run_id)"
        " WHERE r.workflow_id = $1 AND w.status = 'RESOLVED'"
        " AND r.input_json->>'key' = ANY($2::text[])",
        uuid.UUID(parked.workflow_id),
        list(paced_keys),
    )
    resumed = {r["key"]: _epoch(r["resolved_at"]) for r in rows}
    p50 = statistics.median(resumed[k] - published[k] for k in paced_keys) * 1000
    note(f"ours: burst {per_s:.0f} events/s, paced p50 {p50:.0f} ms")
    return Routing(per_s=per_s, base_per_s=base_per_s, p50_ms=p50, base_p50_ms=base_p50)


async def _signal_baseline(
    client: Client, waiting: int, burst: int, paced: int, paced_rate: float
) -> tuple[float, float]:
    """The same burst and paced stream as signals sent straight to `waiting` parked
    BenchWaiter runs."""
    sem = asyncio.Semaphore(16)
    started = time.perf_counter()

    async def start() -> WorkflowHandle[Any, Any]:
        async with sem:
            return await client.start_workflow(
                "BenchWaiter", id=f"bench-wait-{uuid.uuid4()}", task_queue=BASELINE_TASK_QUEUE
            )

    handles = await asyncio.gather(*(start() for _ in range(waiting)))

    async def parked() -> int:
        # workflow tasks are handed out about in start order: the last ones done → all done
        done = 0
        for handle in handles[-10:]:
            described = await handle.describe()
            done += (described.history_length or 0) >= 4
        return done

    await wait_for(parked, 10, 120 + waiting / 5, "baseline waiters parked")
    note(f"baseline: {waiting} waiters parked after {time.perf_counter() - started:.0f}s")
    handles = handles[: burst + paced]
    sent: dict[str, float] = {}

    async def signal(handle: WorkflowHandle[Any, Any]) -> None:
        async with sem:
            sent[handle.id] = time.time()
            await handle.signal("bench_event", {"x": 1})

    async def closed_at(subset: list[WorkflowHandle[Any, Any]]) -> dict[str, float]:
        await all_closed(subset, 60 + len(subset) / 5)
        out = {}
        for handle in subset:
            described = await handle.describe()
            assert described.close_time is not None
            out[handle.id] = _epoch(described.close_time)
        return out

    # burst: every signal RPC answered = delivered (Temporal has written it to the history)
    first = time.time()
    await asyncio.gather(*(signal(h) for h in handles[:burst]))
    per_s = burst / max(time.time() - first, 1e-6)
    await closed_at(handles[:burst])
    await asyncio.sleep(SETTLE_S)
    for handle in handles[burst:]:
        asyncio.create_task(signal(handle))  # noqa: RUF006 - awaited below through the results
        await asyncio.sleep(1.0 / paced_rate)
    closed = await closed_at(handles[burst:])
    p50 = statistics.median(closed[h.id] - sent[h.id] for h in handles[burst:]) * 1000
    note(f"baseline: burst {per_s:.0f} signals/s, paced p50 {p50:.0f} ms")
    return per_s, p50


async def _writer(
    pool: asyncpg.Pool, tenant: uuid.UUID, stop: asyncio.Event, revive: int
) -> list[float]:
    """Back-to-back `store.set` actions; every 4th revives one of `revive` expired keys."""
    latencies = []
    i = 0
    while not stop.is_set():
        if revive and i % 4 == 0:
            namespace, key = "expired", f"k{(i * 7919) % revive + 1}"
        else:
            namespace, key = "live", f"w{i % 100}"
        ctx = ActionContext(
            tenant_id=str(tenant),
            run_id=str(uuid.uuid4()),
            step_path="bench",
            attempt=1,
            idempotency_key=f"bench-{i}",
            pool=pool,
        )
        payload = {"namespace": namespace, "key": key, "value": {"i": i}, "ttlSeconds": 3600}
        started = time.perf_counter()
        await store_set(payload, ctx)
        latencies.append(time.perf_counter() - started)
        i += 1
        await asyncio.sleep(0.002)
    return latencies


async def sweep_under_write(
    pool: asyncpg.Pool, expired_rows: int, baseline_s: float
) -> tuple[float, float, float]:
    """Writer p99 ms while the sweeper deletes `expired_rows`, the same writer with nothing to
    sweep (baseline), and the seconds the sweeper took."""
    tenant = uuid.uuid4()
    stop = asyncio.Event()
    task = asyncio.create_task(_writer(pool, tenant, stop, 0))
    await asyncio.sleep(baseline_s)
    stop.set()
    baseline = await task

    await pool.execute(
        "INSERT INTO workflow_data_store (store_id, tenant, namespace, key, value, expires_at)"
        " SELECT gen_random_uuid(), $1, 'expired', 'k' || g, '1'::jsonb, now() - interval '1 hour'"
        " FROM generate_series(1, $2) g",
        tenant,
        expired_rows,
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.create_task(_writer(pool, tenant, stop, expired_rows))

    async def swept() -> int:
        left = await pool.fetchval(
            "SELECT count(*) FROM workflow_data_store WHERE tenant = $1 AND expires_at <= now()",
            tenant,
        )
        return expired_rows - int(left)

    try:
        # a slow poll: counting the backlog must not compete with the sweeper it measures
        await wait_for(swept, expired_rows, 120 + expired_rows / 2000, "rows swept", interval_s=2.0)
    finally:
        stop.set()
        ours = await task
    took = time.perf_counter() - started
    note(f"sweeper deleted {expired_rows} rows in {took:.0f}s ({expired_rows / took:.0f}/s)")
    return percentile(ours, 0.99) * 1000, percentile(baseline, 0.99) * 1000, took
