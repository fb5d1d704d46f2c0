"""Postgres briefly unavailable: the router naks with backoff and processes everything once it is
back. The router reaches Postgres through a TCP proxy the test cuts (existing connections aborted,
new ones refused) and restores."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._transports |= {writer.transport, up_writer.transport}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, RuntimeError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def cut(self) -> None:
        """Refuse new connections and abort the open ones."""
        assert self._server is not None
        self._server.close()
        for transport in self._transports:
            assert isinstance(transport, asyncio.Transport)
            transport.abort()
        self._transports.clear()
        await asyncio.sleep(0)

    async def stop(self) -> None:
        await self.cut()


async def test_postgres_briefly_unavailable_messages_are_redelivered_and_processed(
    start_router: Any, bus: Any, recorder: Any, tenant_id: str, database_url: str
) -> None:
    url = urlsplit(database_url)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 5432)
    await proxy.start()
    proxied = urlunsplit(url._replace(netloc=f"{url.username}@127.0.0.1:{proxy.port}"))

    run_id = uuid.uuid4()
    await recorder.start(run_id)
    await bus.insert_wait(tenant_id, run_id, "OUTAGE", None)
    try:
        async with start_router(
            database_url=proxied,
            STEPWISE_EVENT_MAX_DELIVER="10",
            STEPWISE_ROUTER_BACKOFF_S="0.3,0.6,1",
        ) as router:
            first = await bus.publish(tenant_id, "OUTAGE", {"n": 0})
            await bus.processed(tenant_id, first)

            await proxy.cut()
            during = [await bus.publish(tenant_id, "OUTAGE", {"n": n}) for n in range(1, 6)]
            await bus.eventually(
                lambda: _retried(router), within=10, what="deliveries failing during the outage"
            )
            await asyncio.sleep(1.5)
            rows = await bus.pool.fetchval(
                "SELECT count(*) FROM workflow_runtime_events WHERE tenant = $1",
                uuid.UUID(tenant_id),
            )
            assert rows == 1  # nothing could be recorded while Postgres was unreachable

            await proxy.start()  # back, on the same port
            for event_id in during:
                await bus.processed(tenant_id, event_id, within=20)
            assert router.sample("stepwise_router_events_total", {"outcome": "retry"}) >= 5
            assert router.sample("stepwise_router_dlq_total", {"reason": "MAX_DELIVER"}) == 0
    finally:
        await proxy.stop()

    received = await recorder.received(run_id)
    ids = [e.event_id for e in received.events]
    assert sorted(ids) == sorted([first, *during])


async def _retried(router: Any) -> bool:
    return bool(router.sample("stepwise_router_events_total", {"outcome": "retry"}) >= 5)
