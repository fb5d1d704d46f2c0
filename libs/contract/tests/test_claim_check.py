"""The claim-check codec on its own (an in-memory store): what is claimed, by whom, the cache,
and that the wire modules load no database driver. The Postgres store and real runs:
services/worker/tests/test_large_payloads.py."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import uuid

import pytest
from stepwise_contract.claim_check import (
    CLAIM_THRESHOLD,
    ClaimCache,
    ClaimCheckCodec,
    ClaimMissing,
    ClaimRef,
    claim_of,
    is_claim,
)
from stepwise_contract.converter import data_converter
from stepwise_contract.names import workflow_id_for
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    WorkflowSerializationContext,
)

TENANT = str(uuid.uuid4())
RUN = str(uuid.uuid4())


class MemoryStore:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str, str], bytes] = {}
        self.gets = 0

    async def put(self, run_id: str, sha256: str, data: bytes) -> str | None:
        if run_id != RUN:
            return None  # no such run
        self.rows[(TENANT, run_id, sha256)] = data
        return TENANT

    async def get(self, ref: ClaimRef) -> bytes | None:
        self.gets += 1
        return self.rows.get((ref.tenant, ref.run_id, ref.sha256))


def big(n: int = CLAIM_THRESHOLD + 1) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=b'"' + b"x" * n + b'"')


def in_run(codec: ClaimCheckCodec, run_id: str = RUN) -> ClaimCheckCodec:
    return codec.with_context(WorkflowSerializationContext("default", workflow_id_for(run_id)))


async def test_only_payloads_over_the_threshold_of_a_known_run_are_claimed() -> None:
    store = MemoryStore()
    codec = ClaimCheckCodec(store)
    small = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert await codec.encode([big()]) == [big()], "no context: no owner, stays inline"
    assert await in_run(codec).encode([small]) == [small]
    assert await in_run(codec, str(uuid.uuid4())).encode([big()]) == [big()], "unknown run"
    foreign = codec.with_context(WorkflowSerializationContext("default", "someone-else"))
    assert await foreign.encode([big()]) == [big()]
    assert store.rows == {}

    [ref_payload] = await in_run(codec).encode([big()])
    assert is_claim(ref_payload) and ref_payload.ByteSize() < 300
    ref = claim_of(ref_payload)
    assert (ref.tenant, ref.run_id) == (TENANT, RUN)
    assert ref.sha256 == hashlib.sha256(big().SerializeToString()).hexdigest()
    # the same bytes again (a replay): the same reference, one row
    activity = codec.with_context(
        ActivitySerializationContext(
            namespace="default", activity_id="1", activity_type="a", activity_task_queue="q",
            workflow_id=workflow_id_for(RUN), workflow_type="w", is_local=True,
        )
    )  # fmt: skip
    assert await activity.encode([big()]) == [ref_payload]
    assert len(store.rows) == 1
    assert await ClaimCheckCodec(store).decode([ref_payload]) == [big()]


async def test_decode_uses_the_cache_and_checks_the_digest() -> None:
    store = MemoryStore()
    codec = in_run(ClaimCheckCodec(store))
    [ref_payload] = await codec.encode([big()])
    assert await codec.decode([ref_payload, ref_payload]) == [big(), big()]
    assert store.gets == 0, "the encoding process decodes from its cache"
    cold = ClaimCheckCodec(store)
    await cold.decode([ref_payload])
    await cold.decode([ref_payload])
    assert store.gets == 1, "fetched once, then cached"

    ref = claim_of(ref_payload)
    store.rows[(ref.tenant, ref.run_id, ref.sha256)] = b"tampered"
    with pytest.raises(ClaimMissing, match="digest"):
        await ClaimCheckCodec(store).decode([ref_payload])
    del store.rows[(ref.tenant, ref.run_id, ref.sha256)]
    with pytest.raises(ClaimMissing, match="not stored"):
        await ClaimCheckCodec(store).decode([ref_payload])
    with pytest.raises(ClaimMissing, match="no claim store"):
        await ClaimCheckCodec(None).decode([ref_payload])


def test_the_cache_is_bounded_by_bytes_least_recently_used_first() -> None:
    cache = ClaimCache(max_bytes=10)
    refs = [ClaimRef(tenant=TENANT, run_id=RUN, sha256=str(i), size=4) for i in range(3)]
    cache.put(refs[0], b"aaaa")
    cache.put(refs[1], b"bbbb")
    assert cache.get(refs[0]) == b"aaaa"  # now the most recent
    cache.put(refs[2], b"cccc")
    assert cache.get(refs[1]) is None and cache.get(refs[0]) == b"aaaa" and len(cache) == 2
    cache.put(ClaimRef(tenant=TENANT, run_id=RUN, sha256="big", size=11), b"x" * 11)
    assert len(cache) == 2, "a payload larger than the cache is not kept"
    other_tenant = ClaimRef(tenant=str(uuid.uuid4()), run_id=RUN, sha256="0", size=4)
    assert cache.get(other_tenant) is None, "keyed by tenant too"


async def test_a_whole_value_round_trips_through_the_data_converter() -> None:
    store = MemoryStore()
    converter = data_converter(store).with_context(
        WorkflowSerializationContext("default", workflow_id_for(RUN))
    )
    value = {"big": "y" * 400_000, "n": 1}
    [payload] = await converter.encode([value])
    assert is_claim(payload)
    assert await data_converter(store).decode([payload]) == [value]


def test_the_wire_modules_load_no_database_driver() -> None:
    code = (
        "import sys; import stepwise_contract.payloads, stepwise_contract.converter, "
        "stepwise_contract.claim_check, stepwise_contract.names; "
        "print('asyncpg' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


async def test_tenant_data_shaped_like_a_reference_is_only_data() -> None:
    """A reference is recognised by the payload's encoding, which only the codec writes: a value
    a tenant shaped like one travels as plain JSON and is never looked up."""
    store = MemoryStore()
    converter = data_converter(store).with_context(
        WorkflowSerializationContext("default", workflow_id_for(RUN))
    )
    lookalike = {"tenant": str(uuid.uuid4()), "runId": RUN, "sha256": "0" * 64, "size": 10}
    [payload] = await converter.encode([lookalike])
    assert not is_claim(payload)
    assert await converter.decode([payload]) == [lookalike]
    assert store.gets == 0
