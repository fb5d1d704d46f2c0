"""The Postgres side of waits, tasks, child runs, quota and cancellation, against a real database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from stepwise_contract.dsl import Filter
from stepwise_contract.names import trigger_fire_key, workflow_id_for
from stepwise_contract.platform.launch import NewRun, insert_run
from stepwise_worker.activities.cancellation_store import CancellationStore
from stepwise_worker.activities.child_run_store import ChildRunStore
from stepwise_worker.activities.quota_store import QuotaStore
from stepwise_worker.activities.task_store import HumanTaskStore
from stepwise_worker.activities.wait_store import WaitStore
from stepwise_worker.wait_messages import (
    BufferCheck,
    CancelRun,
    ChildRunStarted,
    CreateChildRun,
    CreateHumanTask,
    OpenWait,
    PauseForQuota,
    ReserveQuota,
    ResolveHumanTask,
    ResolveWait,
    ResumeFromQuota,
)
from temporalio.exceptions import ApplicationError


def new_id() -> str:
    return str(uuid.uuid4())


async def make_definition(
    pool: asyncpg.Pool, tenant: str, *, versions: int = 1, key: str | None = None
) -> str:
    workflow_id = new_id()
    await pool.execute(
        "INSERT INTO workflow_definitions (workflow_id, tenant, key, name, draft_definition, status)"
        " VALUES ($1, $2, $3, 'child', '{}'::jsonb, 'published')",
        uuid.UUID(workflow_id), uuid.UUID(tenant), key,
    )  # fmt: skip
    for version in range(1, versions + 1):
        await pool.execute(
            "INSERT INTO workflow_definition_versions (version_id, tenant, workflow_id, version,"
            " definition_json, definition_hash) VALUES ($1, $2, $3, $4, $5, $6)",
            uuid.uuid4(), uuid.UUID(tenant), uuid.UUID(workflow_id), version,
            {"name": "child", "steps": []}, f"hash-{version}",
        )  # fmt: skip
    return workflow_id


async def make_run(
    pool: asyncpg.Pool,
    tenant: str,
    *,
    started_ago_s: float = 0,
    metadata: Any = None,
    fire_key: str | None = None,
) -> str:
    run_id = new_id()
    await insert_run(
        pool,
        NewRun(
            run_id=uuid.UUID(run_id),
            tenant=uuid.UUID(tenant),
            workflow_id=uuid.uuid4(),
            workflow_version=1,
            input_json={},
            definition_hash="h",
            trigger_metadata=metadata,
            trigger_fire_key=fire_key,
            trigger_type="event" if fire_key else None,
        ),
    )
    await pool.execute(
        "UPDATE workflow_runs SET started_at = now() - make_interval(secs => $2) WHERE run_id = $1",
        uuid.UUID(run_id), started_ago_s,
    )  # fmt: skip
    return run_id


async def buffer_event(
    pool: asyncpg.Pool,
    tenant: str,
    name: str,
    key: str = "",
    *,
    event_id: str | None = None,
    payload: Any = None,
    ago_s: float = 0,
) -> str:
    event_id = event_id or new_id()
    await pool.execute(
        "INSERT INTO workflow_recent_events (tenant, event_id, event_name, correlation_key,"
        " payload, received_at) VALUES ($1, $2, $3, $4, $5, now() - make_interval(secs => $6))",
        uuid.UUID(tenant), event_id, name, key, payload or {}, ago_s,
    )  # fmt: skip
    return event_id


async def wait_row(pool: asyncpg.Pool, wait_id: str) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT * FROM workflow_run_waits WHERE wait_id = $1", uuid.UUID(wait_id)
    )
    assert row is not None
    return row


async def run_row(pool: asyncpg.Pool, run_id: str) -> asyncpg.Record:
    row = await pool.fetchrow("SELECT * FROM workflow_runs WHERE run_id = $1", uuid.UUID(run_id))
    assert row is not None
    return row


@pytest.fixture
def waits(pool: asyncpg.Pool) -> WaitStore:
    return WaitStore(pool, lookback_s=300)


@pytest.fixture
def tasks(pool: asyncpg.Pool) -> HumanTaskStore:
    return HumanTaskStore(pool)


@pytest.fixture
def children(pool: asyncpg.Pool) -> ChildRunStore:
    return ChildRunStore(pool)


@pytest.fixture
def quota(pool: asyncpg.Pool) -> QuotaStore:
    return QuotaStore(pool)


@pytest.fixture
def cancels(pool: asyncpg.Pool) -> CancellationStore:
    return CancellationStore(pool)


async def test_open_wait_is_idempotent_and_resolve_merges_payload(
    waits: WaitStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id = await make_run(pool, tenant_id)
    wait_id = new_id()
    due = datetime.now(UTC) + timedelta(minutes=5)
    req = OpenWait(
        tenant_id=tenant_id, run_id=run_id, wait_id=wait_id, step_path="root.steps[0]",
        wait_type="event", key="K1", event_name="E", timeout_at=due, payload={"eventName": "E"},
    )  # fmt: skip
    assert (await waits.open_wait(req)).wait_id == wait_id
    await waits.open_wait(req)  # a replayed local activity: still one row
    count = await pool.fetchval(
        "SELECT count(*) FROM workflow_run_waits WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert count == 1
    row = await wait_row(pool, wait_id)
    assert (row["status"], row["key"], row["event_name"], row["wait_type"]) == (
        "WAITING",
        "K1",
        "E",
        "event",
    )
    assert abs((row["timeout_at"] - due).total_seconds()) < 0.01

    done = await waits.resolve_wait(
        ResolveWait(tenant_id=tenant_id, wait_id=wait_id, payload_patch={"matchedEventId": "ev"})
    )
    assert done.changed == 1
    row = await wait_row(pool, wait_id)
    assert row["status"] == "RESOLVED" and row["resolved_at"] is not None
    assert row["payload"] == {"eventName": "E", "matchedEventId": "ev"}
    again = await waits.resolve_wait(
        ResolveWait(tenant_id=tenant_id, wait_id=wait_id, status="CANCELED")
    )
    assert again.changed == 0
    assert (await wait_row(pool, wait_id))["status"] == "RESOLVED"


async def test_buffer_offers_matching_key_oldest_first(
    waits: WaitStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id = await make_run(pool, tenant_id, started_ago_s=60)
    older = await buffer_event(pool, tenant_id, "E", "K1", payload={"n": 1}, ago_s=20)
    await buffer_event(pool, tenant_id, "E", "K1", payload={"n": 2}, ago_s=10)
    await buffer_event(pool, tenant_id, "E", "K2", payload={"n": 3}, ago_s=30)
    await buffer_event(pool, tenant_id, "OTHER", "K1", ago_s=40)
    await buffer_event(pool, new_id(), "E", "K1", ago_s=50)  # another tenant

    hit = await waits.check_buffer(
        BufferCheck(tenant_id=tenant_id, run_id=run_id, event_name="E", correlation_key="K1")
    )
    assert hit.event is not None
    assert (hit.event.event_id, hit.event.correlation_key, hit.event.payload) == (
        older,
        "K1",
        {"n": 1},
    )
    assert hit.event.received_at is not None

    hit = await waits.check_buffer(
        BufferCheck(
            tenant_id=tenant_id,
            run_id=run_id,
            event_name="E",
            correlation_key="K1",
            consumed_event_ids=[older],
        )
    )
    assert hit.event is not None and hit.event.payload == {"n": 2}

    none = await waits.check_buffer(
        BufferCheck(tenant_id=tenant_id, run_id=run_id, event_name="E", correlation_key="K9")
    )
    assert none.event is None


async def test_buffer_without_key_matches_any_key_once(
    waits: WaitStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id = await make_run(pool, tenant_id, started_ago_s=60)
    event_id = new_id()
    # one event buffered under two derived keys
    await buffer_event(pool, tenant_id, "E", "K1", event_id=event_id, ago_s=5)
    await buffer_event(pool, tenant_id, "E", "K2", event_id=event_id, ago_s=5)
    hit = await waits.check_buffer(BufferCheck(tenant_id=tenant_id, run_id=run_id, event_name="E"))
    assert hit.event is not None and hit.event.event_id == event_id
    again = await waits.check_buffer(
        BufferCheck(
            tenant_id=tenant_id, run_id=run_id, event_name="E", consumed_event_ids=[event_id]
        )
    )
    assert again.event is None


async def test_buffer_respects_run_start_lookback_and_filters(
    waits: WaitStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id = await make_run(pool, tenant_id, started_ago_s=30)
    await buffer_event(pool, tenant_id, "E", "K", payload={"ok": True}, ago_s=40)  # before the run
    check = BufferCheck(tenant_id=tenant_id, run_id=run_id, event_name="E", correlation_key="K")
    assert (await waits.check_buffer(check)).event is None

    old_run = await make_run(pool, tenant_id, started_ago_s=3600)
    await buffer_event(pool, tenant_id, "E", "OLD", ago_s=400)  # past the 300 s lookback
    old_check = BufferCheck(
        tenant_id=tenant_id, run_id=old_run, event_name="E", correlation_key="OLD"
    )
    assert (await waits.check_buffer(old_check)).event is None
    wide = WaitStore(pool, lookback_s=1000)
    assert (await wide.check_buffer(old_check)).event is not None

    failing = await buffer_event(pool, tenant_id, "E", "K", payload={"status": "closed"}, ago_s=10)
    passing = await buffer_event(pool, tenant_id, "E", "K", payload={"status": "open"}, ago_s=5)
    filtered = BufferCheck(
        tenant_id=tenant_id, run_id=run_id, event_name="E", correlation_key="K",
        filters=[Filter(path="$.status", op="=", value="open")],
    )  # fmt: skip
    hit = await waits.check_buffer(filtered)
    assert hit.event is not None and hit.event.event_id == passing != failing


async def test_buffer_never_offers_the_trigger_event(
    waits: WaitStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    by_metadata = new_id()
    run_a = await make_run(pool, tenant_id, started_ago_s=60, metadata={"eventId": by_metadata})
    await buffer_event(pool, tenant_id, "E", "K", event_id=by_metadata, ago_s=5)
    check_a = BufferCheck(tenant_id=tenant_id, run_id=run_a, event_name="E", correlation_key="K")
    assert (await waits.check_buffer(check_a)).event is None

    by_fire_key = new_id()
    fire_key = trigger_fire_key(by_fire_key, str(uuid.uuid4()))
    run_b = await make_run(pool, tenant_id, started_ago_s=60, fire_key=fire_key)
    await buffer_event(pool, tenant_id, "E", "F", event_id=by_fire_key, ago_s=5)
    check_b = BufferCheck(tenant_id=tenant_id, run_id=run_b, event_name="E", correlation_key="F")
    assert (await waits.check_buffer(check_b)).event is None
    # the same event is offered to a run it did not start
    run_c = await make_run(pool, tenant_id, started_ago_s=60)
    check_c = BufferCheck(tenant_id=tenant_id, run_id=run_c, event_name="E", correlation_key="F")
    assert (await waits.check_buffer(check_c)).event is not None


async def test_human_task_row_and_wait_then_completion(
    tasks: HumanTaskStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id = await make_run(pool, tenant_id)
    task_id, wait_id = new_id(), new_id()
    req = CreateHumanTask(
        tenant_id=tenant_id, run_id=run_id, step_path="root.steps[1]", task_id=task_id,
        wait_id=wait_id, event_name="human.task.completed", task_type="approval", title="Approve?",
        description="please", context_data={"amount": 5}, form_schema={"type": "object"},
    )  # fmt: skip
    await tasks.create_human_task(req)
    await tasks.create_human_task(req)
    task = await pool.fetchrow(
        "SELECT * FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    assert task is not None
    assert (task["status"], task["title"], task["context_data"], task["form_schema"]) == (
        "PENDING", "Approve?", {"amount": 5}, {"type": "object"},
    )  # fmt: skip
    wait = await wait_row(pool, wait_id)
    assert (wait["wait_type"], wait["key"], wait["event_name"]) == (
        "human",
        task_id,
        "human.task.completed",
    )
    assert wait["payload"]["taskId"] == task_id

    done = await tasks.resolve_human_task(
        ResolveHumanTask(tenant_id=tenant_id, task_id=task_id, wait_id=wait_id,
                         event_name="human.task.completed", response={"approved": True})
    )  # fmt: skip
    assert done.changed == 1
    task = await pool.fetchrow(
        "SELECT * FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    assert task is not None
    assert (task["status"], task["response_json"]) == ("COMPLETED", {"approved": True})
    assert task["completed_at"] is not None
    wait = await wait_row(pool, wait_id)
    assert wait["status"] == "RESOLVED" and wait["payload"]["response"] == {"approved": True}


async def test_child_run_row_pins_version_and_links_parent(
    children: ChildRunStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    parent = await make_run(pool, tenant_id)
    workflow_id = await make_definition(pool, tenant_id, versions=3, key=f"child-{tenant_id}")
    child_id = new_id()
    req = CreateChildRun(
        tenant_id=tenant_id, parent_run_id=parent, root_run_id=parent, parent_step_path="root.steps[0]",
        child_run_id=child_id, workflow_id=workflow_id, payload={"x": 1},
    )  # fmt: skip
    created = await children.create_child_run(req)
    assert created.workflow_version == 3
    assert created.temporal_workflow_id == workflow_id_for(child_id)
    await children.create_child_run(req)  # idempotent
    row = await run_row(pool, child_id)
    assert row["status"] == "RUNNING"
    assert str(row["parent_run_id"]) == parent and str(row["root_run_id"]) == parent
    assert row["workflow_version"] == 3 and row["definition_hash"] == "hash-3"
    assert row["input_json"] == {"x": 1}
    assert row["temporal_workflow_id"] == workflow_id_for(child_id)
    assert row["trigger_metadata_json"] == {
        "parentRunId": parent,
        "rootRunId": parent,
        "parentStepPath": "root.steps[0]",
    }

    retry_id = new_id()
    pinned = await children.create_child_run(
        CreateChildRun(
            tenant_id=tenant_id, parent_run_id=parent, root_run_id=parent, parent_step_path="root.steps[0]",
            child_run_id=retry_id, workflow_id=f"child-{tenant_id}", workflow_version=2,
            retry_of_run_id=child_id,
        )
    )  # fmt: skip
    assert pinned.workflow_version == 2 and pinned.workflow_id == workflow_id
    retry_row = await run_row(pool, retry_id)
    assert retry_row["trigger_metadata_json"]["retryOfRunId"] == child_id

    await children.record_child_started(
        ChildRunStarted(tenant_id=tenant_id, child_run_id=child_id, temporal_run_id="t-1")
    )
    await children.record_child_started(
        ChildRunStarted(tenant_id=tenant_id, child_run_id=child_id, temporal_run_id="t-2")
    )
    assert (await run_row(pool, child_id))["temporal_run_id"] == "t-1"

    with pytest.raises(ApplicationError) as raised:
        await children.create_child_run(
            CreateChildRun(
                tenant_id=tenant_id, parent_run_id=parent, root_run_id=parent, parent_step_path="p",
                child_run_id=new_id(), workflow_id=workflow_id, workflow_version=9,
            )
        )  # fmt: skip
    assert raised.value.non_retryable and raised.value.type == "ValidationError"
    with pytest.raises(ApplicationError):  # another tenant's workflow is unknown here
        await children.create_child_run(
            CreateChildRun(
                tenant_id=new_id(), parent_run_id=parent, root_run_id=parent, parent_step_path="p",
                child_run_id=new_id(), workflow_id=workflow_id,
            )
        )  # fmt: skip


async def set_limit(pool: asyncpg.Pool, tenant: str, limit: int | None) -> None:
    await pool.execute(
        "INSERT INTO tenants (tenant, name, step_quota_limit) VALUES ($1, 't', $2)"
        " ON CONFLICT (tenant) DO UPDATE SET step_quota_limit = excluded.step_quota_limit",
        uuid.UUID(tenant), limit,
    )  # fmt: skip


async def test_quota_reservation_counts_until_the_limit(
    quota: QuotaStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    req = ReserveQuota(tenant_id=tenant_id)
    # no tenant row: unlimited, but counted
    first = await quota.reserve_quota(req)
    assert first.reserved and first.limit is None and first.used == 1
    assert first.period_start is not None and first.period_end is not None
    assert first.period_start.day == 1 and first.period_start.utcoffset() == timedelta(0)
    assert first.period_start.astimezone(UTC).hour == 0
    assert first.period_end.astimezone(UTC).day == 1 and first.period_end > first.period_start

    await set_limit(pool, tenant_id, 3)
    second = await quota.reserve_quota(req)
    third = await quota.reserve_quota(req)
    assert (second.reserved, second.used, third.reserved, third.used, third.limit) == (
        True,
        2,
        True,
        3,
        3,
    )
    refused = await quota.reserve_quota(req)
    assert (refused.reserved, refused.limit, refused.used) == (False, 3, 3)

    await set_limit(pool, tenant_id, 4)  # a raised limit takes effect at once
    assert (await quota.reserve_quota(req)).reserved
    assert not (await quota.reserve_quota(req)).reserved
    await set_limit(pool, tenant_id, None)
    assert (await quota.reserve_quota(req)).used == 5


async def test_quota_reservation_is_atomic_under_concurrency(
    quota: QuotaStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, 7)
    results = await asyncio.gather(
        *(quota.reserve_quota(ReserveQuota(tenant_id=tenant_id)) for _ in range(25))
    )
    assert sum(r.reserved for r in results) == 7
    used = await pool.fetchval(
        "SELECT used_count FROM workflow_step_usage_periods WHERE tenant = $1", uuid.UUID(tenant_id)
    )
    assert used == 7


async def test_quota_zero_limit_refuses_without_a_counter(
    quota: QuotaStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, 0)
    refused = await quota.reserve_quota(ReserveQuota(tenant_id=tenant_id))
    assert (refused.reserved, refused.limit, refused.used) == (False, 0, 0)


async def test_quota_pause_then_resume_projection(
    quota: QuotaStore, pool: asyncpg.Pool, tenant_id: str
) -> None:
    await set_limit(pool, tenant_id, 0)
    run_id = await make_run(pool, tenant_id)
    reservation = await quota.reserve_quota(ReserveQuota(tenant_id=tenant_id))
    wait_id = new_id()
    at = datetime.now(UTC)
    await quota.pause_for_quota(
        PauseForQuota(tenant_id=tenant_id, run_id=run_id, wait_id=wait_id, step_path="root.steps[2]",
                      at=at, reservation=reservation)
    )  # fmt: skip
    run = await run_row(pool, run_id)
    assert (run["status"], run["node_path"]) == ("WAITING", "root.steps[2]")
    error = run["error_json"]
    assert error["category"] == "QuotaExceeded" and error["nodePath"] == "root.steps[2]"
    assert error["details"]["effectiveLimit"] == 0 and error["at"] == at.isoformat()
    wait = await wait_row(pool, wait_id)
    assert (wait["wait_type"], wait["status"], wait["step_path"]) == (
        "quota",
        "WAITING",
        "root.steps[2]",
    )
    assert wait["timeout_at"] == reservation.period_end
    steps = await pool.fetchval(
        "SELECT count(*) FROM workflow_run_steps WHERE run_id = $1", uuid.UUID(run_id)
    )
    assert steps == 0

    resumed = await quota.resume_from_quota(
        ResumeFromQuota(
            tenant_id=tenant_id, run_id=run_id, wait_id=wait_id, step_path="root.steps[2]"
        )
    )
    assert resumed.changed == 1
    run = await run_row(pool, run_id)
    assert (run["status"], run["error_json"]) == ("RUNNING", None)
    assert (await wait_row(pool, wait_id))["status"] == "RESOLVED"


async def test_cancel_run_marks_steps_waits_tasks_and_run(
    waits: WaitStore,
    tasks: HumanTaskStore,
    cancels: CancellationStore,
    pool: asyncpg.Pool,
    tenant_id: str,
) -> None:
    run_id = await make_run(pool, tenant_id)
    step_id = uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_run_steps (step_id, tenant, run_id, step_path, status)"
        " VALUES ($1, $2, $3, 'root.steps[0]', 'STARTED')",
        step_id, uuid.UUID(tenant_id), uuid.UUID(run_id),
    )  # fmt: skip
    wait_id, task_id, task_wait = new_id(), new_id(), new_id()
    await waits.open_wait(
        OpenWait(
            tenant_id=tenant_id,
            run_id=run_id,
            wait_id=wait_id,
            step_path="root.steps[0]",
            wait_type="time",
        )
    )
    await tasks.create_human_task(
        CreateHumanTask(tenant_id=tenant_id, run_id=run_id, step_path="root.steps[0]", task_id=task_id,
                        wait_id=task_wait, event_name="human.task.completed", task_type="t", title="T")
    )  # fmt: skip
    done = await cancels.cancel_run(
        CancelRun(
            tenant_id=tenant_id, run_id=run_id, node_path="root.steps[0]", at=datetime.now(UTC)
        )
    )
    assert done.changed == 1
    run = await run_row(pool, run_id)
    assert (run["status"], run["node_path"]) == ("CANCELED", None)
    assert run["completed_at"] is not None and run["error_json"]["category"] == "Cancellation"
    step = await pool.fetchrow("SELECT * FROM workflow_run_steps WHERE step_id = $1", step_id)
    assert step is not None and step["status"] == "CANCELED" and step["completed_at"] is not None
    assert (await wait_row(pool, wait_id))["status"] == "CANCELED"
    assert (await wait_row(pool, task_wait))["status"] == "CANCELED"
    task_status = await pool.fetchval(
        "SELECT status FROM workflow_tasks WHERE task_id = $1", uuid.UUID(task_id)
    )
    assert task_status == "CANCELED"

    # a terminal run is left alone
    finished = await make_run(pool, tenant_id)
    await pool.execute(
        "UPDATE workflow_runs SET status = 'SUCCEEDED' WHERE run_id = $1", uuid.UUID(finished)
    )
    again = await cancels.cancel_run(
        CancelRun(tenant_id=tenant_id, run_id=finished, at=datetime.now(UTC))
    )
    assert again.changed == 0
    assert (await run_row(pool, finished))["status"] == "SUCCEEDED"
