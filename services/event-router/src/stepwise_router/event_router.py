"""One JetStream message through the steps of SPEC §8, in order, ending in exactly one ack or nak.

1. Undecodable or invalid envelope, or envelope tenant ≠ subject tenant → DLQ, ack.
2. Suspended tenant → the event is recorded with an error, ack.
3. Dedupe on (tenant, event_id) and 5. record the event and its recent-event buffer rows — one
   statement (`Ledger.record`, which also answers step 2): an event already processed is acked
   and ignored; one recorded by a delivery that crashed midway is processed again, idempotently
   (a run consumes an event id once; trigger starts are keyed by their fire key), and the runs
   that delivery already resumed are merged into the row (`WaitSignaller.resumed_earlier`).
4. Correlation keys — pure, computed before recording because the row carries them.
6. Signal every matching waiting run. 7. Start the triggered runs. 8. Finish the row, ack.
Any exception (database, Temporal, or a bug) → nak with the backoff delay of this delivery; on the
last delivery the message goes to the DLQ (`MAX_DELIVER`, the last error) and is acked.

Why nothing published just before a wait is lost (SPEC §5.4)
-------------------------------------------------------------
Router: commit the buffer row B (step 5), THEN read the waiting rows (step 6), in a new statement.
Worker (`event.wait`): commit the wait row W, THEN read the buffer.
Under READ COMMITTED each statement sees everything committed before it began. Suppose the router's
wait lookup does not see W: then W committed after that lookup began, hence after B committed. The
worker's buffer read begins after W committed, so it sees B and the run takes the event from the
buffer. Otherwise the router sees W and signals the run. Both may happen; the worker consumes an
event id once, so a run never gets the event twice. This only holds because each side commits its
write before it reads the other's table: doing the buffer insert and the wait lookup in one
transaction would reopen the gap (the lookup's snapshot would predate B's visibility).
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Sequence

import msgspec
import structlog
from nats.aio.msg import Msg
from stepwise_contract.enums import DlqReason
from stepwise_contract.envelope import EnvelopeError, EventEnvelope, decode_envelope

from stepwise_router.correlation import Correlation
from stepwise_router.dlq import DeadLetters, one_line, subject_tenant
from stepwise_router.event_ledger import Ledger, Outcome, Recorded
from stepwise_router.metrics import Metrics
from stepwise_router.triggers import TriggerLauncher
from stepwise_router.wait_signaller import WaitSignaller

log = structlog.get_logger("stepwise_router.event_router")


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """What happened to one delivery, for its log line and metrics."""

    outcome: str  # routed | error | duplicate | suspended | dlq | retry
    envelope: EventEnvelope | None = None
    signaled: int = 0
    started: int = 0
    errors: list[str] = []
    dlq_reason: str | None = None
    detail: str | None = None


class EventRouter:
    def __init__(
        self,
        *,
        ledger: Ledger,
        signaller: WaitSignaller,
        launcher: TriggerLauncher,
        dead_letters: DeadLetters,
        correlation: Correlation,
        metrics: Metrics,
        max_deliver: int,
        backoff_s: Sequence[float],
    ) -> None:
        self._ledger = ledger
        self._signaller = signaller
        self._launcher = launcher
        self._dead_letters = dead_letters
        self._correlation = correlation
        self._metrics = metrics
        self._max_deliver = max_deliver
        self._backoff_s = list(backoff_s) or [0.0]

    async def handle(self, msg: Msg) -> None:
        """Route one delivery; acks or naks it. Never raises for a routing failure."""
        started = time.perf_counter()
        self._metrics.received.inc()
        delivery = msg.metadata.num_delivered or 1
        try:
            result = await self._route(msg)
        except Exception as exc:
            result = await self._failed(msg, delivery, exc)
        else:
            try:
                await msg.ack()
            except Exception as exc:
                # Routed all the same: the redelivery finds the event processed and is acked then.
                log.warning("ack_failed", error=str(exc), subject=msg.subject)
        elapsed = time.perf_counter() - started
        self._observe(result, msg, delivery, elapsed)

    async def _route(self, msg: Msg) -> Result:
        # 1. envelope
        try:
            env = decode_envelope(msg.data)
        except EnvelopeError as exc:
            return await self._dead_letter(msg, DlqReason(exc.code), exc.detail)
        tenant = uuid.UUID(env.tenant)
        if subject_tenant(msg.subject) != str(tenant):
            return await self._dead_letter(
                msg,
                DlqReason.TENANT_SUBJECT_MISMATCH,
                f"envelope tenant {env.tenant} does not match subject {msg.subject}",
            )
        # every line logged while routing it (signals, triggers, the ledger) names the event
        with structlog.contextvars.bound_contextvars(
            tenant=env.tenant, event_id=env.event_id, event_name=env.name
        ):
            return await self._route_event(env, tenant)

    async def _route_event(self, env: EventEnvelope, tenant: uuid.UUID) -> Result:
        # 4. correlation (pure; the recorded row carries the keys)
        keys = self._correlation.keys(env)
        # 2. suspended tenant, 3. dedupe and 5. record the event and the recent-event buffer:
        # one statement, committed before step 6
        recorded = await self._ledger.record(tenant, env, keys)
        if recorded is Recorded.SUSPENDED:
            return Result(outcome="suspended", envelope=env)
        if recorded is Recorded.PROCESSED:
            return Result(outcome="duplicate", envelope=env)
        # 6. resume matching waits
        waits = await self._signaller.matching_waits(tenant, env.name, keys)
        signalled = await self._signaller.signal(env, keys, waits)
        if recorded is Recorded.UNFINISHED:
            signalled = await self._signaller.resumed_earlier(tenant, env, keys, signalled)
        # 7. triggered runs
        triggered = await self._launcher.start_all(tenant, env, keys)
        # 8. the event row, then (in `handle`) the ack
        await self._ledger.finish(
            tenant,
            env.event_id,
            Outcome(
                signaled_run_ids=signalled.run_ids,
                matched_wait_id=signalled.first_wait_id,
                started_run_ids=triggered.started_run_ids,
                errors=triggered.errors,
            ),
        )
        if signalled.run_ids:
            self._metrics.matched.inc()
        for kind in signalled.kinds:
            self._metrics.signals.labels(kind).inc()
        self._metrics.runs_started.inc(len(triggered.started_run_ids))
        self._metrics.trigger_failures.inc(len(triggered.errors))
        return Result(
            outcome="error" if triggered.errors else "routed",
            envelope=env,
            signaled=len(signalled.run_ids),
            started=len(triggered.started_run_ids),
            errors=triggered.errors,
        )

    async def _dead_letter(self, msg: Msg, reason: DlqReason, detail: str) -> Result:
        await self._dead_letters.send(
            data=msg.data,
            subject=msg.subject,
            stream_sequence=msg.metadata.sequence.stream,
            reason=reason,
            detail=detail,
        )
        return Result(outcome="dlq", dlq_reason=reason.value, detail=one_line(detail))

    async def _failed(self, msg: Msg, delivery: int, exc: Exception) -> Result:
        detail = f"{type(exc).__name__}: {exc}"
        env: EventEnvelope | None = None
        with contextlib.suppress(EnvelopeError):
            env = decode_envelope(msg.data)  # only to name the event in the log line
        if delivery < self._max_deliver:
            delay = self._backoff_s[min(delivery, len(self._backoff_s)) - 1]
            try:
                await msg.nak(delay=delay)
            except Exception as nak_exc:  # the ack wait will redeliver it anyway
                log.warning("nak_failed", error=str(nak_exc))
            return Result(outcome="retry", envelope=env, detail=one_line(detail))
        try:
            result = await self._dead_letter(msg, DlqReason.MAX_DELIVER, detail)
            await msg.ack()
        except Exception as dlq_exc:
            # JetStream will not deliver it again; it stays in the stream for an operator.
            log.error(
                "dead_letter_failed",
                error=str(dlq_exc),
                original_error=detail,
                subject=msg.subject,
                stream_sequence=msg.metadata.sequence.stream,
            )
            return Result(outcome="retry", envelope=env, detail=one_line(detail))
        return msgspec.structs.replace(result, envelope=env)

    def _observe(self, result: Result, msg: Msg, delivery: int, elapsed: float) -> None:
        self._metrics.outcomes.labels(result.outcome).inc()
        self._metrics.latency.observe(elapsed)
        env = result.envelope
        fields: dict[str, object] = {
            "tenant": env.tenant if env else None,
            "event_id": env.event_id if env else None,
            "event_name": env.name if env else None,
            "outcome": result.outcome,
            "latency_ms": round(elapsed * 1000, 2),
            "delivery": delivery,
            "subject": msg.subject,
        }
        if result.outcome in ("routed", "error"):
            fields |= {"signaled": result.signaled, "started": result.started}
        if result.errors:
            fields["errors"] = result.errors
        if result.dlq_reason:
            fields["dlq_reason"] = result.dlq_reason
        if result.detail:
            fields["detail"] = result.detail
        if result.outcome in ("dlq", "retry", "error"):
            log.warning("event_routed", **fields)
        else:
            log.info("event_routed", **fields)
