"""Resuming waiting runs (SPEC §8 step 6).

Every `WAITING` event or human wait of the tenant with the event's name and either one of the
event's keys or no key at all is signalled:
- an `event` wait gets `workflowRuntimeV2Event` carrying the key it matched (its own key, or the
  event's primary key when it has none) — the worker compares that key with the wait's;
- a `human` wait (keyed by its task id) gets `workflowRuntimeV2HumanTask` for that task.
Filters are the run's to evaluate: a signalled run may keep waiting.

Signals are idempotent on the worker's side (a run consumes an event id once), so a redelivered
event may signal again. One signal per (run, kind, key) is enough: the worker matches a signal
against all its open waits. A run that already closed (Temporal NOT_FOUND) is skipped, not an error.
Any other Temporal failure is raised: the message is redelivered and the signals sent again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Final

import asyncpg
import msgspec
from stepwise_contract import names
from stepwise_contract.envelope import EventEnvelope
from stepwise_contract.payloads import EventSignal, HumanTaskSignal
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from stepwise_router.group_commit import Batching, fetch_grouped

# At most this many signal RPCs in flight for one event (a broadcast to thousands of keyless waits
# must not open thousands of streams at once).
SIGNAL_FANOUT: Final = 32

# Every event of a batch (group commit, `group_commit.py`): `ord` is its index in the batch.
WAITS = """
SELECT i.ord, w.wait_id, w.run_id, w.wait_type, w.key
FROM jsonb_to_recordset($1::jsonb) AS i(ord int, tenant uuid, event_name text, keys text[])
JOIN LATERAL (
    SELECT wait_id, run_id, wait_type, key, created_at FROM workflow_run_waits
    WHERE tenant = i.tenant AND event_name = i.event_name AND status = 'WAITING'
      AND wait_type IN ('event', 'human') AND (key IS NULL OR key = ANY (i.keys))
) w ON true
ORDER BY i.ord, w.created_at, w.wait_id
"""

# Event waits this event already resumed: the worker stamps the consumed event id on the wait it
# resolves. Read on a redelivery only (see `resumed_earlier`).
RESUMED = """
SELECT wait_id, run_id, wait_type, key FROM workflow_run_waits
WHERE tenant = $1 AND event_name = $2 AND status = 'RESOLVED' AND wait_type = 'event'
  AND (key IS NULL OR key = ANY ($3::text[])) AND payload ->> 'matchedEventId' = $4
ORDER BY created_at, wait_id
"""


class Wait(msgspec.Struct, frozen=True, kw_only=True):
    wait_id: uuid.UUID
    run_id: uuid.UUID
    wait_type: str
    key: str | None


class Signalled(msgspec.Struct, frozen=True, kw_only=True):
    run_ids: list[uuid.UUID]  # in wait order, each once
    first_wait_id: uuid.UUID | None
    kinds: list[str]  # the kind of each delivered signal, for metrics


_Lookup = tuple[uuid.UUID, str, list[str]]


def _wait(r: asyncpg.Record) -> Wait:
    return Wait(wait_id=r["wait_id"], run_id=r["run_id"], wait_type=r["wait_type"], key=r["key"])


class WaitSignaller:
    def __init__(self, pool: asyncpg.Pool, client: Client, batching: Batching | None = None):
        self._pool = pool
        self._client = client
        batching = batching or Batching()  # concurrent lookups share a statement
        self._lookup = batching.commit("waits", self._matching_many, self._matching_one)

    async def matching_waits(
        self, tenant: uuid.UUID, event_name: str, keys: list[str]
    ) -> list[Wait]:
        return await self._lookup((tenant, event_name, keys))

    async def _matching_one(self, item: _Lookup) -> list[Wait]:
        return (await self._matching_many([item]))[0]

    async def _matching_many(self, items: Sequence[_Lookup]) -> list[list[Wait]]:
        grouped = await fetch_grouped(
            self._pool,
            WAITS,
            [{"tenant": tenant, "event_name": name, "keys": keys} for tenant, name, keys in items],
        )
        return [[_wait(r) for r in rows] for rows in grouped]

    async def resumed_earlier(
        self, tenant: uuid.UUID, env: EventEnvelope, keys: list[str], signalled: Signalled
    ) -> Signalled:
        """`signalled` plus the runs an earlier, crashed delivery of this event resumed.

        Their waits are RESOLVED by now, so `matching_waits` no longer finds them; without this the
        redelivery would finish the event row as matching nothing. Read after this delivery's
        signals: a wait is then either still WAITING (signalled above) or already stamped.
        """
        rows = await self._pool.fetch(RESUMED, tenant, env.name, keys, env.event_id)
        earlier = [r for r in rows if r["run_id"] not in signalled.run_ids]
        if not earlier:
            return signalled
        return Signalled(
            run_ids=[r["run_id"] for r in earlier] + signalled.run_ids,
            first_wait_id=earlier[0]["wait_id"],  # the wait of the first run, as `signal` does
            kinds=signalled.kinds,
        )

    async def signal(self, env: EventEnvelope, keys: list[str], waits: list[Wait]) -> Signalled:
        received_at = datetime.now(UTC).isoformat()
        primary = keys[0] if keys else None
        sends: dict[tuple[uuid.UUID, str, str | None], tuple[Wait, str, Any]] = {}
        for wait in waits:
            if wait.wait_type == "human":
                if wait.key is None:
                    continue  # a human wait is keyed by its task id; without one nothing matches
                body: Any = HumanTaskSignal(
                    task_id=wait.key, event_name=env.name, payload=env.payload or {}
                )
                signal_name = names.SIGNAL_HUMAN_TASK
            else:
                body = EventSignal(
                    event_id=env.event_id,
                    event_name=env.name,
                    correlation_key=wait.key if wait.key is not None else primary,
                    payload=env.payload or {},
                    received_at=received_at,
                )
                signal_name = names.SIGNAL_EVENT
            sends.setdefault((wait.run_id, signal_name, wait.key), (wait, signal_name, body))

        limit = asyncio.Semaphore(SIGNAL_FANOUT)

        async def send(signal_name: str, run_id: uuid.UUID, body: Any) -> bool:
            async with limit:
                return await self._send(signal_name, run_id, body)

        plan = list(sends.values())
        delivered = await asyncio.gather(
            *(send(signal_name, wait.run_id, body) for wait, signal_name, body in plan)
        )
        run_ids: list[uuid.UUID] = []
        first_wait: uuid.UUID | None = None
        kinds: list[str] = []
        for (wait, _, _), ok in zip(plan, delivered, strict=True):
            if not ok:
                continue
            kinds.append(wait.wait_type)
            if first_wait is None:
                first_wait = wait.wait_id
            if wait.run_id not in run_ids:
                run_ids.append(wait.run_id)
        return Signalled(run_ids=run_ids, first_wait_id=first_wait, kinds=kinds)

    async def _send(self, signal_name: str, run_id: uuid.UUID, body: Any) -> bool:
        handle = self._client.get_workflow_handle(names.workflow_id_for(str(run_id)))
        try:
            await handle.signal(signal_name, body)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False  # the run closed after its wait row was read: nothing to resume
            raise
        return True
