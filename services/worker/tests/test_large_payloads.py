"""Large values (the claim-check codec) on the real dev server: workflow code sees real values,
Temporal's history holds references, expressions are capped at 256 KiB by their result."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
from stepwise_contract.claim_check import (
    CLAIM_ENCODING,
    CLAIM_THRESHOLD,
    ClaimMissing,
    ClaimRef,
    claim_of,
    is_claim,
)
from stepwise_contract.converter import data_converter
from stepwise_contract.platform.claim_store import PostgresClaimStore
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_worker.activities.legacy_blobs import LegacyBlobs
from stepwise_worker.workflow.checkpoint import Checkpoints
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from .builders import assign, echo, expr
from .runs import outcome, run_definition, run_row, running_worker
from .signalling import open_wait, send_event

CHUNK = 250_000  # one expression result stays under the 256 KiB cap


def chunks(count: int) -> list[dict[str, str]]:
    """An input of `count` times 250 KB: each part its own expression, the whole over the cap."""
    return [expr("payload.s") for _ in range(count)]


@pytest.fixture
async def worker(temporal_client: Client, pool: asyncpg.Pool) -> AsyncIterator[None]:
    """Per test: one test here runs its own workers, and no other may poll the queue meanwhile."""
    async with running_worker(temporal_client, pool):
        yield


@pytest.fixture
def continue_as_new_every_5() -> Iterator[None]:
    """Continue-as-new after every 5 steps instead of 500 (the workflow shares this module)."""
    defaults = Checkpoints.__init__.__kwdefaults__
    assert defaults is not None
    old = defaults["every"]
    defaults["every"] = 5
    try:
        yield
    finally:
        defaults["every"] = old


async def histories(client: Client, workflow_id: str) -> list[Any]:
    """Every run of the workflow id (continue-as-new chain), first to last."""
    desc = await client.get_workflow_handle(workflow_id).describe()
    run_id: str | None = desc.raw_description.workflow_execution_info.first_run_id
    found = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        found.append(history)
        last = history.events[-1]
        run_id = None
        if last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return found


def payloads_of(message: Any) -> Iterator[Payload]:
    """Every Temporal payload anywhere inside a protobuf message."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif hasattr(value, "ListFields"):
            items = [value]
        else:  # a repeated field
            items = list(value)
        for item in items:
            if hasattr(item, "ListFields"):
                yield from payloads_of(item)


async def claims_in_history(client: Client, handle: WorkflowHandle[Any, Any]) -> list[ClaimRef]:
    """The references in the whole history; asserts no payload in it is over 256 KiB."""
    refs = []
    for history in await histories(client, handle.id):
        for event in history.events:
            for payload in payloads_of(event):
                assert payload.ByteSize() <= CLAIM_THRESHOLD, (event.event_type, payload.metadata)
                if is_claim(payload):
                    refs.append(claim_of(payload))
    return refs


async def test_expressions_read_large_values_and_history_holds_references(
    worker: None, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [
        echo("len", expr("len(payload.big)"), "vars.n"),
        echo("list", chunks(10), "vars.big"),  # a 2.5 MB action output, saved as it is
        echo("first", expr("$length(vars.big.value[0])"), "vars.first"),
        echo("count", expr("$count(vars.big.value)"), "vars.count"),
    ]
    payload = {"big": "x" * 300_000, "s": "y" * CHUNK}
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "big", "steps": steps}, payload
    )
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    result = (await run_row(pool, run_id))["result_json"]
    assert result["vars"]["n"] == {"value": 300_000}
    assert result["vars"]["first"] == {"value": CHUNK}
    assert result["vars"]["count"] == {"value": 10}
    assert result["vars"]["big"]["value"] == ["y" * CHUNK] * 10
    workflow_result = await handle.result()
    assert workflow_result["vars"]["big"]["value"][9] == "y" * CHUNK, "the client decodes it"

    refs = await claims_in_history(temporal_client, handle)
    assert refs and {r.run_id for r in refs} == {run_id}
    assert {r.tenant for r in refs} == {tenant_id}
    stored = await pool.fetch(
        "SELECT sha256, size_bytes FROM workflow_payload_claims WHERE run_id = $1",
        uuid.UUID(run_id),
    )
    assert {r.sha256 for r in refs} <= {r["sha256"] for r in stored}
    assert max(r["size_bytes"] for r in stored) > 2_500_000


async def test_an_assign_copying_a_large_field_fails_naming_step_and_expression(
    worker: None, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [assign("copy", **{"vars.copy": expr("payload.big")})]
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "copy", "steps": steps}, {"big": "x" * 300_000}
    )
    assert await outcome(handle) == "failed"
    error = (await run_row(pool, run_id))["error_json"]
    assert error["category"] == "ExpressionError"
    assert "root.steps[0]" in error["message"] and "payload.big" in error["message"]
    assert "262,144" in error["message"]


async def test_for_each_over_a_1_mb_list(
    worker: None, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    """The list is read in place, by index or as the `items` list itself (forEach may select up to
    the 10 MiB ceiling of any value; what an expression computes stays capped at 256 KiB)."""
    items = [{"n": i, "pad": "z" * 10_000} for i in range(100)]
    steps = [
        assign("zero", **{"vars.sum": 0}),
        {"id": "loop", "type": "control.forEach", "items": expr("[0..$count(payload.items) - 1]"),
         "body": [assign("add", **{"vars.sum": expr("vars.sum + payload.items[$$.item].n"),
                                   "vars.padLen": expr("$length(payload.items[$$.item].pad)")})]},
    ]  # fmt: skip
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "loop", "steps": steps}, {"items": items}
    )
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    result = (await run_row(pool, run_id))["result_json"]
    assert result["vars"]["sum"] == sum(range(100)) and result["vars"]["padLen"] == 10_000
    assert await claims_in_history(temporal_client, handle), "the 1 MB input went by reference"

    whole = [{"id": "loop", "type": "control.forEach", "items": expr("payload.items"),
              "body": [assign("x", **{"vars.x": expr("item.n")})]}]  # fmt: skip
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "whole", "steps": whole}, {"items": items}
    )
    # forEach may select the whole 1 MB list (a computed value stays capped at 256 KiB)
    assert await outcome(handle) == "completed", (await run_row(pool, run_id))["error_json"]
    assert (await run_row(pool, run_id))["result_json"]["vars"]["x"] == items[-1]["n"]


async def test_continue_as_new_carries_a_3_mb_variable(
    continue_as_new_every_5: None,
    worker: None,
    pool: asyncpg.Pool,
    temporal_client: Client,
    tenant_id: str,
) -> None:
    steps = [
        echo("big", chunks(12), "vars.big"),
        {"id": "loop", "type": "control.forEach", "items": expr("[1..8]"),
         "body": [assign("a", **{"local.x": expr("item")}),
                  assign("b", **{"vars.last": expr("local.x + $count(vars.big.value)")})]},
        echo("len", expr("$length(vars.big.value[11])"), "vars.len"),
    ]  # fmt: skip
    run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "can", "steps": steps}, {"s": "q" * CHUNK}
    )
    assert await outcome(handle, 120) == "completed", (await run_row(pool, run_id))["error_json"]
    result = (await run_row(pool, run_id))["result_json"]
    assert result["vars"]["last"] == 20 and result["vars"]["len"] == {"value": CHUNK}
    assert result["vars"]["big"]["value"] == ["q" * CHUNK] * 12
    runs = await histories(temporal_client, handle.id)
    assert len(runs) >= 3, "continued as new, carrying the variable"
    await claims_in_history(temporal_client, handle)


async def test_a_run_resumes_on_another_worker_that_fetches_its_values(
    temporal_address: str, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    """The first worker stops while the run waits; a second one (its own client, so an empty
    claim cache) replays the history from the stored claims and finishes the run."""
    steps = [
        echo("big", chunks(4), "vars.big"),
        {"id": "w", "type": "event.wait", "config": {"eventName": "GO"}},
        echo("len", expr("$count(vars.big.value) * $length(vars.big.value[3])"), "vars.total"),
    ]
    async with running_worker(temporal_client, pool):
        run_id, handle = await run_definition(
            pool, temporal_client, tenant_id, {"name": "move", "steps": steps}, {"s": "m" * CHUNK}
        )
        await open_wait(pool, run_id, "event")
    fresh = await connect_temporal(temporal_address, "default", claims=PostgresClaimStore(pool))
    async with running_worker(fresh, pool):
        moved = fresh.get_workflow_handle(handle.id)
        await send_event(moved, "GO", {})
        assert await outcome(moved, 60) == "completed"
    result = (await run_row(pool, run_id))["result_json"]
    assert result["vars"]["total"] == {"value": 4 * CHUNK}
    assert result["vars"]["big"]["value"] == ["m" * CHUNK] * 4


async def test_a_claim_of_one_tenant_is_never_returned_for_another(
    worker: None, pool: asyncpg.Pool, temporal_client: Client, tenant_id: str
) -> None:
    steps = [echo("big", chunks(2), "vars.big")]
    _run_id, handle = await run_definition(
        pool, temporal_client, tenant_id, {"name": "mine", "steps": steps}, {"s": "t" * CHUNK}
    )
    assert await outcome(handle) == "completed"
    [ref, *_] = await claims_in_history(temporal_client, handle)
    store = PostgresClaimStore(pool)
    assert await store.get(ref) is not None
    other = str(uuid.uuid4())
    forged = ClaimRef(tenant=other, run_id=ref.run_id, sha256=ref.sha256, size=ref.size)
    assert await store.get(forged) is None
    # the codec that stored it (cache warm) answers the forged reference from the store: missing
    codec = data_converter(store).payload_codec
    assert codec is not None
    [real] = await codec.decode([Payload(metadata={"encoding": CLAIM_ENCODING},
                                         data=_ref_bytes(ref))])  # fmt: skip
    assert real.ByteSize() == ref.size
    with pytest.raises(ClaimMissing):
        await codec.decode(
            [Payload(metadata={"encoding": CLAIM_ENCODING}, data=_ref_bytes(forged))]
        )
    # another tenant's run cannot own a claim it did not write
    assert await store.put(str(uuid.uuid4()), ref.sha256, b"x") is None


def _ref_bytes(ref: ClaimRef) -> bytes:
    import msgspec

    return msgspec.json.encode(ref)


async def test_placeholders_of_runs_recorded_before_the_codec_resolve_within_their_run(
    pool: asyncpg.Pool, tenant_id: str
) -> None:
    run_id, other_run = str(uuid.uuid4()), str(uuid.uuid4())
    blob, foreign = uuid.uuid4(), uuid.uuid4()
    await pool.execute(
        "INSERT INTO workflow_payload_blobs (blob_id, tenant, run_id, body, size_bytes)"
        " VALUES ($1, $2, $3, $4, 10), ($5, $2, $6, $7, 10)",
        blob, uuid.UUID(tenant_id), uuid.UUID(run_id), {"big": 1},
        foreign, uuid.UUID(other_run), {"secret": 2},
    )  # fmt: skip
    legacy = LegacyBlobs(pool)
    value = {"a": {"$blobRef": str(blob)}, "b": [{"$blobRef": str(foreign)}], "c": {"$blobRef": 1}}
    assert await legacy.materialize(tenant_id, run_id, value) == {
        "a": {"big": 1},
        "b": [{"$blobRef": str(foreign)}],  # another run's blob: left as the tenant wrote it
        "c": {"$blobRef": 1},
    }
    assert await legacy.materialize(str(uuid.uuid4()), run_id, value) == value
