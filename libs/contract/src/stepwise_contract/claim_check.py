"""Large payloads leave Temporal's history: a claim-check `PayloadCodec`.

Every payload the data converter produces passes through `ClaimCheckCodec.encode`. One whose
encoded size exceeds `CLAIM_THRESHOLD` (256 KiB) is written to a `ClaimStore` under the sha256 of
its bytes and replaced by a small reference payload (encoding `json/stepwise-claim`); `decode`
swaps the reference back for the stored payload. Workflow code, activities and every client
therefore see real values while the history holds ~200-byte references.

Ownership: the codec learns the workflow a payload belongs to from Temporal's serialization
context (our workflow ids are `workflow-runtime-v2:run:<run_id>`); the store files the payload
under that run and its tenant (read from the run row) and names both in the reference. A payload
with no run to own it (no context, a foreign workflow id, no run row) stays inline: nothing is
stored that retention could not delete.

The same bytes under the same run are one row (content addressing): a replay re-encoding its
commands, or a retried activity, adds nothing. Decoded payloads are kept in a bounded in-process
LRU cache (`ClaimCache`), so a replaying worker does not fetch a blob once per activation.

This module is wire-side: it loads no database driver. The Postgres store is
`stepwise_contract.platform.claim_store`, built by the services' plumbing.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Final, Protocol, Self

import msgspec
from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    ActivitySerializationContext,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from stepwise_contract.names import run_id_from_workflow_id

CLAIM_THRESHOLD: Final = 256 * 1024
CLAIM_ENCODING: Final = b"json/stepwise-claim"
DEFAULT_CACHE_BYTES: Final = 64 * 1024 * 1024


class ClaimRef(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the history holds instead of a large payload."""

    tenant: str
    run_id: str
    sha256: str
    size: int


class ClaimStore(Protocol):
    """Where claimed payloads live (the services use `claim_store.PostgresClaimStore`)."""

    async def put(self, run_id: str, sha256: str, data: bytes) -> str | None:
        """Store `data` for the run; return the run's tenant, or None when the run is unknown
        (the payload then stays inline). Storing the same bytes again changes nothing."""
        ...

    async def get(self, ref: ClaimRef) -> bytes | None:
        """The stored bytes of `ref` (looked up by tenant, run and digest), or None."""
        ...


class ClaimMissing(LookupError):
    """A reference whose payload is not (or no longer) stored."""


class ClaimCache:
    """Decoded payload bytes by reference, least recently used evicted past `max_bytes`."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._bytes = 0
        self._items: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()

    @staticmethod
    def _key(ref: ClaimRef) -> tuple[str, str, str]:
        return (ref.tenant, ref.run_id, ref.sha256)

    def get(self, ref: ClaimRef) -> bytes | None:
        key = self._key(ref)
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, ref: ClaimRef, data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        key = self._key(ref)
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= len(old)
        self._items[key] = data
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            _key, evicted = self._items.popitem(last=False)
            self._bytes -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)


_encode_ref = msgspec.json.Encoder().encode
_decode_ref = msgspec.json.Decoder(ClaimRef).decode


def is_claim(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == CLAIM_ENCODING


def claim_of(payload: Payload) -> ClaimRef:
    """The reference a claim payload carries (`msgspec.ValidationError` if malformed)."""
    return _decode_ref(payload.data)


def run_of_context(context: SerializationContext | None) -> str | None:
    """The Stepwise run a payload belongs to, from Temporal's serialization context."""
    if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
        workflow_id = context.workflow_id
        return run_id_from_workflow_id(workflow_id) if workflow_id else None
    return None


@dataclass(frozen=True)
class ClaimCheckCodec(PayloadCodec, WithSerializationContext):
    """`store=None` (tools that never carry run data) keeps every payload inline and fails
    clearly on a reference."""

    store: ClaimStore | None
    cache: ClaimCache = field(default_factory=ClaimCache)
    threshold: int = CLAIM_THRESHOLD
    run_id: str | None = None

    def with_context(self, context: SerializationContext) -> Self:
        run_id = run_of_context(context)
        return self if run_id == self.run_id else replace(self, run_id=run_id)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._encode_one(p) for p in payloads]

    async def _encode_one(self, payload: Payload) -> Payload:
        if self.store is None or self.run_id is None or payload.ByteSize() <= self.threshold:
            return payload
        data = payload.SerializeToString()
        digest = hashlib.sha256(data).hexdigest()
        tenant = await self.store.put(self.run_id, digest, data)
        if tenant is None:
            return payload
        ref = ClaimRef(tenant=tenant, run_id=self.run_id, sha256=digest, size=len(data))
        self.cache.put(ref, data)
        return Payload(metadata={"encoding": CLAIM_ENCODING}, data=_encode_ref(ref))

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self.resolve(claim_of(p)) if is_claim(p) else p for p in payloads]

    async def resolve(self, ref: ClaimRef) -> Payload:
        """The payload a reference stands for (cache first, then the store; digest checked)."""
        data = self.cache.get(ref)
        if data is None:
            if self.store is None:
                raise ClaimMissing(f"payload {ref.sha256} is claimed but no claim store is set")
            data = await self.store.get(ref)
            if data is None:
                raise ClaimMissing(f"payload {ref.sha256} of run {ref.run_id} is not stored")
            if hashlib.sha256(data).hexdigest() != ref.sha256:
                raise ClaimMissing(f"payload {ref.sha256} does not match its digest")
            self.cache.put(ref, data)
        return Payload.FromString(data)
