"""The fetch loop: pull from the durable consumer, keep up to `concurrency` messages in flight.

nats-py's `fetch(batch)` holds the first message of a batch until the batch fills or the request
expires, which would add up to the fetch timeout to an idle system's latency. This loop instead
keeps one pull request outstanding for as many messages as there are free slots (at most `batch`),
and hands every message to a handler task the moment it arrives. A request ends when it delivered
all it asked for or JetStream answers with a status (408 when it expired); then the next one asks
for the slots free at that time. Each request has its own reply subject, so a late status of an
old request never ends a newer one.

Messages whose handling outlives a third of the ack wait get an in-progress ack, so JetStream does
not hand them to another replica while they are still being worked on.

Shutdown (`stop` set): no new pull; the outstanding request is allowed to end (at most `expires_s`)
so no message arrives after we stopped listening; the subscription is removed; every in-flight
message is finished (acked or nak'd). The caller drains the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections.abc import Awaitable, Callable
from typing import Final

import structlog
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from stepwise_contract import names

log = structlog.get_logger("stepwise_router.consumer")

STATUS_HEADER: Final = "Status"
HEARTBEAT_STATUS: Final = "100"
EXPIRED_STATUS: Final = "408"
# Pause after a status that is not an ordinary expiry (consumer missing, no responders, ...) so a
# broken consumer does not turn this loop into a busy one.
ERROR_PAUSE_S: Final = 1.0

Handler = Callable[[Msg], Awaitable[None]]


class _Pull:
    def __init__(self, reply: str, batch: int) -> None:
        self.reply = reply
        self.remaining = batch
        self.done = asyncio.Event()
        self.status: str | None = None


class EventConsumer:
    def __init__(
        self,
        nc: NATS,
        handler: Handler,
        *,
        concurrency: int,
        batch: int,
        ack_wait_s: float,
        expires_s: float = 1.0,
        stream: str = names.EVENTS_STREAM,
        durable: str = names.EVENTS_CONSUMER,
    ) -> None:
        self._nc = nc
        self._handler = handler
        self._concurrency = concurrency
        self._batch = batch
        self._ack_wait_s = ack_wait_s
        self._expires_s = expires_s
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._inbox = nc.new_inbox()
        self._counter = itertools.count()
        self._pull: _Pull | None = None
        self._in_flight: dict[asyncio.Task[None], tuple[Msg, float]] = {}
        self._slot_free = asyncio.Event()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def run(self, stop: asyncio.Event) -> None:
        sub = await self._nc.subscribe(f"{self._inbox}.*", cb=self._on_message)
        keep_alive = asyncio.create_task(self._keep_alive())
        try:
            while not stop.is_set():
                free = self._concurrency - len(self._in_flight)
                if free <= 0:
                    self._slot_free.clear()
                    await _first(self._slot_free.wait(), stop.wait())
                    continue
                status = await self._pull_once(min(free, self._batch))
                if status not in (None, EXPIRED_STATUS):
                    log.warning("pull_status", status=status)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), ERROR_PAUSE_S)
        finally:
            # No message can start after this; those in flight still ack (acks are publishes).
            await _unsubscribe(sub)
            if self._in_flight:
                await asyncio.gather(*self._in_flight, return_exceptions=True)
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive

    async def _pull_once(self, batch: int) -> str | None:
        """Ask for `batch` messages and wait until the request is over; its final status."""
        pull = _Pull(f"{self._inbox}.{next(self._counter)}", batch)
        self._pull = pull
        request = {"batch": batch, "expires": int(self._expires_s * 1e9)}
        await self._nc.publish(self._next_subject, json.dumps(request).encode(), reply=pull.reply)
        # The server ends the request itself at `expires`; the margin covers a status lost to a
        # reconnect, after which we simply ask again.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(pull.done.wait(), self._expires_s + 2.0)
        return pull.status

    async def _on_message(self, msg: Msg) -> None:
        pull = self._pull
        status = msg.headers.get(STATUS_HEADER) if msg.headers else None
        if status is not None and not msg.reply:
            # Status messages come on the request's own reply subject.
            if pull is not None and msg.subject == pull.reply and status != HEARTBEAT_STATUS:
                pull.status = status
                pull.done.set()
            return
        # Messages keep their original subject, so they are counted against the current request;
        # one from a request we gave up on only makes the next request start a little earlier.
        if pull is not None:
            pull.remaining -= 1
            if pull.remaining <= 0:
                pull.done.set()
        task = asyncio.create_task(self._handle(msg))
        self._in_flight[task] = (msg, time.monotonic())
        task.add_done_callback(self._finished)

    async def _handle(self, msg: Msg) -> None:
        try:
            await self._handler(msg)
        except Exception:
            # The handler acks or naks by itself; reaching here is a bug. The ack wait redelivers.
            log.exception("handler_crashed", subject=msg.subject)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
        self._slot_free.set()

    async def _keep_alive(self) -> None:
        period = self._ack_wait_s / 3
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for msg, started in list(self._in_flight.values()):
                if now - started >= period and not msg.is_acked:
                    with contextlib.suppress(Exception):
                        await msg.in_progress()


async def _first(*waits: Awaitable[object]) -> None:
    """Return as soon as one of `waits` completes; cancel the others."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def _unsubscribe(sub: Subscription) -> None:
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
