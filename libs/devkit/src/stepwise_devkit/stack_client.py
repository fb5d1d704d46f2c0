"""Driving a running stack through its public interfaces only: the HTTP API and NATS JetStream.

Used by the bench and by the end-to-end tests (`tests/e2e`), which must not reach into a
service's code. `StackApi` wraps an aiohttp session that carries the API key; `EventPublisher`
publishes envelopes the way a producer does (`workflow.events.<tenant>.<type>`, `Nats-Msg-Id`);
`eventually` polls a probe until it answers something truthy.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

import aiohttp
import nats
import nats.errors
from nats.aio.client import Client as Nats
from nats.js import JetStreamContext
from stepwise_contract.envelope import EventEnvelope, encode_envelope
from stepwise_contract.names import MSG_ID_HEADER, event_subject
from stepwise_contract.platform.nats_connection import parse_nats_urls

T = TypeVar("T")

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELED"})


class ApiCallError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: Any) -> None:
        super().__init__(f"{method} {path} → {status}: {body}")
        self.status = status
        self.body = body


async def eventually(
    probe: Callable[[], Awaitable[T | None]],
    what: str,
    timeout_s: float = 30.0,
    interval_s: float = 0.2,
) -> T:
    """Call `probe` until it returns something truthy (returned); AssertionError on timeout."""
    deadline = time.monotonic() + timeout_s
    last: T | None = None
    while True:
        last = await probe()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout_s:g}s waiting for {what} (last: {last})"
            )
        await asyncio.sleep(interval_s)


class StackApi:
    """A thin client of the Stepwise HTTP API (SPEC §7)."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        async with self.session.request(method, path, json=body, headers=headers) as resp:
            text = await resp.text()
            try:
                data: Any = await resp.json(content_type=None) if text else None
            except ValueError:
                data = text
            return resp.status, data

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """The answer of a call that must succeed (2xx), else `ApiCallError`."""
        status, data = await self.request(method, path, body, headers=headers)
        if status >= 300:
            raise ApiCallError(method, path, status, data)
        return data

    async def publish_definition(self, definition: dict[str, Any], key: str | None = None) -> str:
        """Create a definition and publish version 1; its workflow id."""
        body: dict[str, Any] = {"definition": definition}
        if key is not None:
            body["key"] = key
        created = await self.call("POST", "/api/workflow-definitions", body)
        workflow_id = str(created["workflowId"])
        await self.call("POST", f"/api/workflow-definitions/{workflow_id}/publish", {})
        return workflow_id

    async def launch(
        self,
        workflow_id: str,
        payload: dict[str, Any] | None = None,
        *,
        idempotency_key: str | None = None,
        priority: int | None = None,
    ) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body: dict[str, Any] = {"workflowId": workflow_id, "payload": payload or {}}
        if priority is not None:
            body["priority"] = priority
        data = await self.call("POST", "/api/workflow-runs", body, headers=headers)
        return str(data["runId"])

    async def run(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call("GET", f"/api/workflow-runs/{run_id}")
        return data

    async def steps(self, run_id: str) -> dict[str, Any]:
        data: dict[str, Any] = await self.call("GET", f"/api/workflow-runs/{run_id}/steps")
        return data

    async def wait_run(
        self, run_id: str, statuses: Iterable[str] = TERMINAL, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """The run once its status is one of `statuses`."""
        wanted = frozenset(statuses)

        async def probe() -> dict[str, Any] | None:
            run = await self.run(run_id)
            return run if run["status"] in wanted else None

        return await eventually(probe, f"run {run_id} to be one of {sorted(wanted)}", timeout_s)

    async def wait_waiting(self, run_id: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The run's open wait once it has one (its `WAITING` wait row)."""

        async def probe() -> dict[str, Any] | None:
            waits = (await self.steps(run_id))["waits"]
            open_waits = [w for w in waits if w["status"] == "WAITING"]
            return open_waits[0] if open_waits else None

        return await eventually(probe, f"run {run_id} to wait", timeout_s)

    async def runs_by_status(self, workflow_id: str) -> dict[str, int]:
        """How many runs of a workflow are in each status (pages through the list)."""
        counts: dict[str, int] = {}
        cursor: str | None = None
        while True:
            path = f"/api/workflow-runs?workflowId={workflow_id}&limit=500"
            if cursor:
                path += f"&cursor={cursor}"
            page = await self.call("GET", path)
            for run in page["runs"]:
                counts[run["status"]] = counts.get(run["status"], 0) + 1
            cursor = page.get("nextCursor")
            if not cursor:
                return counts

    async def event(self, event_id: str) -> dict[str, Any] | None:
        status, data = await self.request("GET", f"/api/workflow/events/{event_id}")
        if status == 404:
            return None
        if status >= 300:
            raise ApiCallError("GET", f"/api/workflow/events/{event_id}", status, data)
        result: dict[str, Any] = data
        return result


class EventPublisher:
    """Publishes event envelopes to JetStream as a producer does (SPEC §8)."""

    def __init__(self, nc: Nats, js: JetStreamContext, tenant: str) -> None:
        self.nc = nc
        self.js = js
        self.tenant = tenant

    @classmethod
    async def connect(cls, nats_url: str, tenant: str) -> EventPublisher:
        # Keep trying to reconnect for as long as a test may restart the server.
        # `nats_url`: one URL or a cluster's comma-separated list
        nc = await nats.connect(
            list(parse_nats_urls(nats_url)), max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        return cls(nc, nc.jetstream(), tenant)

    async def publish(
        self,
        event_type: str,
        payload: dict[str, Any] | None = None,
        *,
        key: str | None = None,
        event_id: str | None = None,
        timeout_s: float = 5.0,
    ) -> str:
        """Publish one event (JetStream ack awaited); its event id."""
        env = EventEnvelope(
            event_id=event_id or str(uuid.uuid4()),
            event_type=event_type,
            tenant=self.tenant,
            workflow_correlation_key=key,
            payload=payload if payload is not None else {},
        )
        await self.js.publish(
            event_subject(self.tenant, event_type),
            encode_envelope(env),
            timeout=timeout_s,
            headers={MSG_ID_HEADER: env.event_id},
        )
        return env.event_id

    async def publish_reliably(
        self,
        event_type: str,
        payload: dict[str, Any],
        key: str | None,
        *,
        give_up_after_s: float = 60.0,
    ) -> str:
        """Publish until JetStream acks, always with the same event id (so a publish whose ack
        was lost is deduplicated by `Nats-Msg-Id`): what a producer riding out a NATS restart or
        a cluster's leader election does."""
        event_id = str(uuid.uuid4())
        deadline = time.monotonic() + give_up_after_s
        while True:
            try:
                await self.publish(event_type, payload, key=key, event_id=event_id, timeout_s=2)
                return event_id
            except (nats.errors.Error, OSError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    async def close(self) -> None:
        await self.nc.drain()
