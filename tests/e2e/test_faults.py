"""Faults against the running system, each asserting that nothing is lost and nothing done twice.

Work goes in through the public interfaces (HTTP launches, JetStream publishes); the checks read
the database where no API aggregates what must be proved (the invocation ledger of 200 runs, the
event ledger of 1,000 events, the data-store counters the actions wrote).

Why counters: `store.increment` is the action whose double execution is visible. The ledger
(`workflow_action_invocations`) lets an action run again only while its invocation is not yet
SUCCEEDED; the increment commits in its own statement before the ledger's SUCCEEDED update, so a
kill -9 landing between those two commits re-executes it (the worker's documented at-least-once
window: one SQL round trip per invocation). The tests count such double applications, report
them and bound them by what can be in flight at the instant of the kill; a lost increment (a
counter below its expected value) always fails.
"""

from __future__ import annotations

import asyncio
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

import aiohttp
import asyncpg
import msgspec
import pytest
from stepwise_contract.names import DLQ_STREAM, dlq_subject
from stepwise_devkit.child_process import ManagedProcess, free_port, http_ready
from stepwise_devkit.stack import Stack
from stepwise_devkit.stack_client import ApiCallError, EventPublisher, StackApi, eventually

pytestmark = pytest.mark.e2e

T = TypeVar("T")

# How many store.increment executions may be doubled by one kill -9 of the worker (see the module
# docstring): the invocations caught between their two commits at that instant. More means the
# ledger is not doing its job.
MAX_DOUBLED_PER_KILL = 5


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _db(make: Callable[[], Awaitable[T]], attempts: int = 20) -> T:
    """A check query that survives the Postgres blips some tests cause (pooled connections die)."""
    for attempt in range(attempts):
        try:
            return await make()
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


def _increment(step_id: str, namespace: str, key_expr: str) -> dict[str, Any]:
    return {
        "id": step_id,
        "type": "action.call",
        "config": {
            "actionId": "store.increment",
            "version": 1,
            "inputMapping": {"namespace": namespace, "key": {"$expr": key_expr}, "by": 1},
        },
        # a lost connection is a TransientError a step retries only when its definition says so
        # (docs/actions.md): without this, a Postgres blip landing inside an increment fails the run
        "retry": {"maxAttempts": 5, "backoffMs": 500, "retryOn": ["TransientError"]},
    }


def counter_definition(namespace: str, wait_ms: int) -> dict[str, Any]:
    """Five actions around a durable timer: per-run counters a/b/c, a shared `total`, an echo."""
    return {
        "name": _name("e2e-fault-counters"),
        "steps": [
            _increment("a", namespace, "'a-' & payload.n"),
            {
                "id": "echo",
                "type": "action.call",
                "config": {
                    "actionId": "core.echo",
                    "version": 1,
                    "inputMapping": {"value": {"$expr": "payload.n"}},
                    "saveAs": "vars.echoed",
                },
            },
            {
                "id": "nap",
                "type": "time.wait",
                "config": {"mode": "duration", "durationMs": wait_ms},
            },
            _increment("b", namespace, "'b-' & payload.n"),
            _increment("total", namespace, "'total'"),
            _increment("c", namespace, "'c-' & payload.n"),
        ],
    }


COUNTER_ACTIONS = 5
COUNTER_STEPS = 6


async def _launch_all(
    api: StackApi, workflow_id: str, count: int, concurrency: int = 16
) -> list[str]:
    """Launch `count` runs (payload `n` = "0".."count-1"), each with an Idempotency-Key and retried
    on a failed request, as a careful client does; the run ids in `n` order."""
    sem = asyncio.Semaphore(concurrency)
    batch = uuid.uuid4().hex

    async def one(n: int) -> str:
        async with sem:
            deadline = time.monotonic() + 60
            while True:
                try:
                    return await api.launch(
                        workflow_id, {"n": str(n)}, idempotency_key=f"{batch}-{n}"
                    )
                except (TimeoutError, ApiCallError, aiohttp.ClientError) as exc:
                    retryable = not isinstance(exc, ApiCallError) or exc.status >= 500
                    if not retryable or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.3)

    return list(await asyncio.gather(*(one(n) for n in range(count))))


async def _all_succeeded(
    api: StackApi, workflow_id: str, count: int, timeout_s: float
) -> dict[str, int]:
    async def probe() -> dict[str, int] | None:
        try:
            counts = await api.runs_by_status(workflow_id)
        except (TimeoutError, ApiCallError, aiohttp.ClientError):
            return None  # the API itself may be riding out a fault
        failed = counts.get("FAILED", 0) + counts.get("CANCELED", 0)
        if failed:
            page = await api.call(
                "GET", f"/api/workflow-runs?workflowId={workflow_id}&status=FAILED&limit=5"
            )
            errors = [run["error_json"] for run in page["runs"]]
            raise AssertionError(f"runs ended badly: {counts}; errors: {errors}")
        return counts if counts.get("SUCCEEDED", 0) >= count else None

    return await eventually(
        probe, f"{count} runs of {workflow_id} to succeed", timeout_s, interval_s=0.5
    )


async def _check_ledger_and_counters(
    db: asyncpg.Pool, tenant: uuid.UUID, namespace: str, run_ids: Sequence[str]
) -> int:
    """Assert nothing lost and nothing recorded twice; returns how many increments were doubled."""
    runs = [uuid.UUID(r) for r in run_ids]
    ledger = await _db(
        lambda: db.fetch(
            "SELECT action_id, idempotency_key,"
            " count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded, count(*) AS attempts"
            " FROM workflow_action_invocations WHERE tenant = $1 AND run_id = ANY($2::uuid[])"
            " GROUP BY action_id, action_version, idempotency_key",
            tenant,
            runs,
        )
    )
    assert len(ledger) == COUNTER_ACTIONS * len(runs), "an invocation key is missing"
    twice = [dict(r) for r in ledger if r["succeeded"] != 1]
    assert not twice, f"invocations not SUCCEEDED exactly once: {twice[:5]}"

    # Per step: one SUCCEEDED row. An increment may also have FAILED attempts before it — a blip
    # inside it is a TransientError its definition retries — never after it, and never for
    # another reason.
    steps = await _db(
        lambda: db.fetch(
            "SELECT run_id, definition_step_id,"
            " count(*) FILTER (WHERE status = 'SUCCEEDED') AS succeeded,"
            " max(attempt) FILTER (WHERE status = 'SUCCEEDED') AS succeeded_attempt,"
            " max(attempt) FILTER (WHERE status <> 'SUCCEEDED') AS last_failed_attempt,"
            " bool_and(status = 'SUCCEEDED' OR (status = 'FAILED'"
            "          AND error_json ->> 'category' = 'TransientError')) AS only_retried"
            " FROM workflow_run_steps WHERE tenant = $1 AND run_id = ANY($2::uuid[])"
            " GROUP BY run_id, definition_step_id",
            tenant,
            runs,
        )
    )
    not_once = [
        dict(r)
        for r in steps
        if r["succeeded"] != 1
        or not r["only_retried"]
        or (r["last_failed_attempt"] or 0) >= r["succeeded_attempt"]
    ]
    assert not not_once, f"step rows not exactly one SUCCEEDED per step: {not_once[:5]}"
    assert len(steps) == COUNTER_STEPS * len(runs)

    rows = await _db(
        lambda: db.fetch(
            "SELECT key, (value #>> '{}')::int AS value FROM workflow_data_store"
            " WHERE tenant = $1 AND namespace = $2",
            tenant,
            namespace,
        )
    )
    values = {r["key"]: r["value"] for r in rows}
    expected = {f"{p}-{n}": 1 for p in "abc" for n in range(len(runs))} | {"total": len(runs)}
    assert values.keys() == expected.keys()
    lost = {k: v for k, v in values.items() if v < expected[k]}
    assert not lost, f"increments lost: {lost}"
    return sum(values[k] - expected[k] for k in expected)


async def test_worker_kill_9_in_the_middle_of_200_runs(
    stack: Stack, stack_api: StackApi, stack_db: asyncpg.Pool
) -> None:
    runs = 200
    tenant = uuid.UUID(stack.tenant_id)
    namespace = _name("fault-worker")
    workflow_id = await stack_api.publish_definition(counter_definition(namespace, wait_ms=1000))

    async def progress() -> int:
        return int(
            await stack_db.fetchval(
                "SELECT count(*) FROM workflow_action_invocations i JOIN workflow_runs r"
                " USING (run_id) WHERE r.tenant = $1 AND r.workflow_id = $2"
                " AND i.status = 'SUCCEEDED'",
                tenant,
                uuid.UUID(workflow_id),
            )
        )

    started = time.monotonic()
    launching = asyncio.create_task(_launch_all(stack_api, workflow_id, runs))
    # kill once ~30% of the actions are done: runs are in every stage (not started, in an
    # action, in the timer, finished)
    done_at_kill = await eventually(
        lambda: _at_least(progress, runs * COUNTER_ACTIONS * 3 // 10),
        "the runs to get going",
        timeout_s=120,
    )
    stack.kill("worker")
    killed_at = time.monotonic()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(stack.start_service, "worker")
    run_ids = await launching
    counts = await _all_succeeded(stack_api, workflow_id, runs, timeout_s=180)
    assert counts == {"SUCCEEDED": runs}
    doubled = await _check_ledger_and_counters(stack_db, tenant, namespace, run_ids)
    print(
        f"\nworker kill -9: {done_at_kill}/{runs * COUNTER_ACTIONS} actions done at the kill"
        f" ({killed_at - started:.1f}s); all {runs} SUCCEEDED"
        f" {time.monotonic() - killed_at:.1f}s after it; increments doubled: {doubled}"
    )
    assert doubled <= MAX_DOUBLED_PER_KILL


async def _at_least(probe: Callable[[], Awaitable[int]], threshold: int) -> int | None:
    value = await probe()
    return value if value >= threshold else None


def _wait_definition(event_name: str) -> dict[str, Any]:
    return {
        "name": _name("e2e-fault-wait"),
        "steps": [
            {
                "id": "wait",
                "type": "event.wait",
                "config": {
                    "eventName": event_name,
                    "correlationKey": {"$expr": "payload.key"},
                    "timeoutMs": 600_000,
                },
            },
            {
                "id": "got",
                "type": "transform.assign",
                "config": {"assign": {"vars.seq": {"$expr": "vars.event.seq"}}},
            },
        ],
    }


async def _park(
    api: StackApi, db: asyncpg.Pool, tenant: uuid.UUID, event_name: str, count: int
) -> dict[str, str]:
    """`count` runs waiting on `event_name` with keys k-0..; key → run id."""
    workflow_id = await api.publish_definition(_wait_definition(event_name))
    sem = asyncio.Semaphore(16)

    async def one(i: int) -> tuple[str, str]:
        async with sem:
            return f"k-{i}", await api.launch(workflow_id, {"key": f"k-{i}"})

    by_key = dict(await asyncio.gather(*(one(i) for i in range(count))))

    async def parked() -> int | None:
        n = await _db(
            lambda: db.fetchval(
                "SELECT count(*) FROM workflow_run_waits WHERE tenant = $1"
                " AND run_id = ANY($2::uuid[]) AND status = 'WAITING'",
                tenant,
                [uuid.UUID(r) for r in by_key.values()],
            )
        )
        return int(n) if n == count else None

    await eventually(parked, f"{count} runs to wait on {event_name}", timeout_s=90)
    return by_key


async def _dead_letters(publisher: EventPublisher, tenant: str) -> int:
    info = await publisher.js.stream_info(DLQ_STREAM, subjects_filter=dlq_subject(tenant))
    return int((info.state.subjects or {}).get(dlq_subject(tenant), 0))


async def _events_recorded(
    db: asyncpg.Pool, tenant: uuid.UUID, event_ids: Sequence[str]
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await _db(
        lambda: db.fetch(
            "SELECT event_id, event_name, correlation_key, processed_at, matched_run_id,"
            " started_run_ids, error_message FROM workflow_runtime_events"
            " WHERE tenant = $1 AND event_id = ANY($2::text[])",
            tenant,
            list(event_ids),
        )
    )
    return rows


async def _all_processed(
    db: asyncpg.Pool, tenant: uuid.UUID, event_ids: Sequence[str], timeout_s: float
) -> list[asyncpg.Record]:
    async def probe() -> list[asyncpg.Record] | None:
        rows = await _events_recorded(db, tenant, event_ids)
        done = [r for r in rows if r["processed_at"] is not None]
        return rows if len(done) == len(event_ids) else None

    return await eventually(
        probe, f"{len(event_ids)} events to be processed", timeout_s, interval_s=0.5
    )


async def _check_resumed_once(
    api: StackApi,
    db: asyncpg.Pool,
    tenant: uuid.UUID,
    by_key: dict[str, str],
    matching: dict[str, str],
    rows: Sequence[asyncpg.Record],
) -> None:
    """Each parked run resumed by exactly its event (`matching`: key → event id), once."""
    for run_id in by_key.values():
        run = await api.wait_run(run_id, timeout_s=60)
        assert run["status"] == "SUCCEEDED", run["error_json"]
    waits = await _db(
        lambda: db.fetch(
            "SELECT run_id, status, payload FROM workflow_run_waits WHERE tenant = $1"
            " AND run_id = ANY($2::uuid[])",
            tenant,
            [uuid.UUID(r) for r in by_key.values()],
        )
    )
    assert len(waits) == len(by_key) and {w["status"] for w in waits} == {"RESOLVED"}
    # each run got exactly its own event
    consumed = {str(w["run_id"]): msgspec.json.decode(w["payload"]) for w in waits}
    run_key = {run: key for key, run in by_key.items()}
    wrong = {
        run: payload.get("matchedEventId")
        for run, payload in consumed.items()
        if payload.get("matchedEventId") != matching[run_key[run]]
    }
    assert not wrong, wrong
    # and the event rows say which run each resumed
    by_event = {r["event_id"]: r for r in rows}
    unmatched = {
        key: event_id
        for key, event_id in matching.items()
        if str(by_event[event_id]["matched_run_id"]) != by_key[key]
    }
    assert not unmatched, unmatched


async def test_router_kill_9_under_1000_events(
    stack: Stack, stack_api: StackApi, stack_db: asyncpg.Pool, nats_events: EventPublisher
) -> None:
    """1,000 events (100 resume parked runs, 20 start a triggered workflow, 880 match nothing);
    the router is killed after ~20% were recorded. Every event is recorded once and processed,
    every parked run resumed by its event, every trigger started exactly one run."""
    tenant = uuid.UUID(stack.tenant_id)
    suffix = uuid.uuid4().hex[:6].upper()
    wait_event, trigger_event = f"FAULT_WAIT_{suffix}", f"FAULT_TRIGGER_{suffix}"
    by_key = await _park(stack_api, stack_db, tenant, wait_event, 100)
    trigger_wf = await stack_api.publish_definition(
        {
            "name": _name("e2e-fault-trigger"),
            "trigger": {
                "type": "event",
                "eventName": trigger_event,
                "payloadMapping": {"seq": {"$expr": "event.payload.seq"}},
            },
            "steps": [{"id": "s", "type": "state.set", "config": {"state": "started"}}],
        }
    )
    dlq_before = await _dead_letters(nats_events, stack.tenant_id)

    published: list[str] = []
    matching: dict[str, str] = {}
    triggers: list[str] = []

    async def produce() -> None:
        for seq in range(1000):
            payload = {"seq": seq}
            if seq % 10 == 0:
                key = f"k-{seq // 10}"
                event_id = await nats_events.publish_reliably(wait_event, payload, key)
                matching[key] = event_id
            elif seq % 50 == 5:
                event_id = await nats_events.publish_reliably(trigger_event, payload, None)
                triggers.append(event_id)
            else:
                event_id = await nats_events.publish_reliably(wait_event, payload, f"u-{seq}")
            published.append(event_id)

    producing = asyncio.create_task(produce())

    async def recorded() -> int:
        return int(
            await stack_db.fetchval(
                "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1"
                " AND event_name = ANY($2::text[])",
                tenant,
                [wait_event, trigger_event],
            )
        )

    at_kill = await eventually(lambda: _at_least(recorded, 200), "200 events routed", 120)
    stack.kill("event-router")
    await asyncio.sleep(1.0)
    await asyncio.to_thread(stack.start_service, "event-router")
    await producing
    assert len(published) == len(set(published)) == 1000

    # unacked deliveries of the killed router come back after the ack wait (5 s here)
    rows = await _all_processed(stack_db, tenant, published, timeout_s=120)
    assert len(rows) == 1000 and {r["event_id"] for r in rows} == set(published)
    assert [r for r in rows if r["error_message"]] == []
    by_event = {r["event_id"]: r for r in rows}
    started = [run for e in triggers for run in (by_event[e]["started_run_ids"] or [])]
    assert len(started) == len(set(started)) == len(triggers) == 20
    counts = await _all_succeeded(stack_api, trigger_wf, 20, timeout_s=60)
    assert counts == {"SUCCEEDED": 20}  # exactly one run per trigger event
    assert await _dead_letters(nats_events, stack.tenant_id) == dlq_before
    print(f"\nrouter kill -9 after {at_kill} of 1000 events recorded; none lost or doubled")
    await _check_resumed_once(stack_api, stack_db, tenant, by_key, matching, rows)


@pytest.fixture
async def crashing_api(stack: Stack) -> AsyncIterator[ManagedProcess]:
    """A second API process with the test-only hook that dies after the run row is written."""
    port = free_port()
    proc = ManagedProcess(
        name="api-crash-after-row",
        argv=[sys.executable, "-m", "stepwise_api"],
        log_path=stack.home / "logs" / "api-crash-after-row.log",
        env={
            **stack.service("api").env,
            "STEPWISE_API_PORT": str(port),
            "STEPWISE_FAULT_CRASH_AFTER_RUN_ROW": "1",
        },
        ready=http_ready(f"http://127.0.0.1:{port}/readyz"),
    )
    proc.start()
    try:
        await asyncio.to_thread(proc.wait_ready, 60)
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


async def test_api_crash_between_run_row_and_temporal_start_is_reconciled(
    stack: Stack, stack_api: StackApi, crashing_api: ManagedProcess
) -> None:
    workflow_id = await stack_api.publish_definition(
        {
            "name": _name("e2e-fault-api"),
            "steps": [
                {
                    "id": "echo",
                    "type": "action.call",
                    "config": {
                        "actionId": "core.echo",
                        "version": 1,
                        "inputMapping": {"value": {"$expr": "payload.n"}},
                    },
                }
            ],
        }
    )
    port = crashing_api.env["STEPWISE_API_PORT"]
    key = f"crash-{uuid.uuid4().hex}"
    async with aiohttp.ClientSession(
        f"http://127.0.0.1:{port}",
        headers={"Authorization": f"Bearer {stack.api_key}", "Idempotency-Key": key},
    ) as direct:
        with pytest.raises(aiohttp.ClientError):
            async with direct.post(
                "/api/workflow-runs", json={"workflowId": workflow_id, "payload": {"n": 7}}
            ) as resp:
                pytest.fail(f"the crashing API answered {resp.status}: {await resp.text()}")
    await asyncio.to_thread(_wait_exit, crashing_api, 10)
    assert crashing_api.returncode == 137

    # the accepted run exists, RUNNING without a Temporal start, until the sweeper starts it
    [listed] = (await stack_api.call("GET", f"/api/workflow-runs?workflowId={workflow_id}"))["runs"]
    run_id = listed["run_id"]
    run = await stack_api.wait_run(run_id, timeout_s=30)
    assert run["status"] == "SUCCEEDED", run["error_json"]
    logs = (await stack_api.call("GET", f"/api/workflow-runs/{run_id}/logs"))["logs"]
    assert any(log["source"] == "sweeper" and "reconciliation" in log["message"] for log in logs), (
        logs
    )
    # the client's retry with the same Idempotency-Key gets that run, not a second one
    status, body = await stack_api.request(
        "POST",
        "/api/workflow-runs",
        {"workflowId": workflow_id, "payload": {"n": 7}},
        headers={"Idempotency-Key": key},
    )
    assert (status, body["runId"]) == (200, run_id), body
    assert await stack_api.runs_by_status(workflow_id) == {"SUCCEEDED": 1}


def _wait_exit(proc: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while proc.alive():
        if time.monotonic() > deadline:
            raise AssertionError(f"{proc.name} did not exit")
        time.sleep(0.1)


async def test_nats_kill_9_and_restart_mid_stream_loses_no_event(
    stack: Stack, stack_api: StackApi, stack_db: asyncpg.Pool, nats_events: EventPublisher
) -> None:
    """300 events published while nats-server is killed and restarted on its JetStream file
    store; the producer retries unacked publishes with the same event id. Every acked event is
    recorded once and the 30 parked runs resume."""
    tenant = uuid.UUID(stack.tenant_id)
    event_name = f"FAULT_NATS_{uuid.uuid4().hex[:6].upper()}"
    by_key = await _park(stack_api, stack_db, tenant, event_name, 30)
    published: list[str] = []
    matching: dict[str, str] = {}

    async def produce() -> None:
        for seq in range(300):
            key = f"k-{seq // 10}" if seq % 10 == 0 else f"u-{seq}"
            event_id = await nats_events.publish_reliably(event_name, {"seq": seq}, key)
            if seq % 10 == 0:
                matching[key] = event_id
            published.append(event_id)
            await asyncio.sleep(0.005)

    producing = asyncio.create_task(produce())
    await eventually(lambda: _at_least(_count(published), 100), "100 events published", 60)
    await asyncio.to_thread(stack.restart_nats, hard=True)
    await producing
    assert len(published) == len(set(published)) == 300
    rows = await _all_processed(stack_db, tenant, published, timeout_s=90)
    assert len(rows) == 300 and [r for r in rows if r["error_message"]] == []
    await _check_resumed_once(stack_api, stack_db, tenant, by_key, matching, rows)


def _count(items: Sequence[object]) -> Callable[[], Awaitable[int]]:
    async def probe() -> int:
        return len(items)

    return probe


async def test_postgres_blips_during_launches_and_runs(
    stack: Stack, stack_api: StackApi, stack_db: asyncpg.Pool
) -> None:
    """Every connection to the database is terminated twice — while 40 runs are being launched
    and while they run. Clients retry failed launches with their Idempotency-Key; all 40 runs
    (and no more) succeed, with every action applied once."""
    runs = 40
    tenant = uuid.UUID(stack.tenant_id)
    namespace = _name("fault-pg")
    workflow_id = await stack_api.publish_definition(counter_definition(namespace, wait_ms=1500))
    launching = asyncio.create_task(_launch_all(stack_api, workflow_id, runs, concurrency=4))
    await asyncio.sleep(0.3)
    first = await asyncio.to_thread(stack.postgres_blip)
    run_ids = await launching
    await asyncio.sleep(1.0)
    second = await asyncio.to_thread(stack.postgres_blip)
    assert first >= 4 and second >= 4
    counts = await _all_succeeded(stack_api, workflow_id, runs, timeout_s=120)
    assert counts == {"SUCCEEDED": runs}
    assert len(set(run_ids)) == runs
    doubled = await _check_ledger_and_counters(stack_db, tenant, namespace, run_ids)
    print(
        f"\npostgres blips terminated {first} and {second} connections; {runs} SUCCEEDED;"
        f" increments doubled: {doubled}"
    )
    # a blip between an increment's commit and its ledger update re-executes it, like a kill
    assert doubled <= 2 * MAX_DOUBLED_PER_KILL
