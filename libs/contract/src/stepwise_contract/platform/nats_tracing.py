"""Trace propagation over NATS: a publish carries `traceparent`, the consumer continues it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext, api
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind

from stepwise_contract.names import MSG_ID_HEADER

MessageHandler = Callable[[Msg], Awaitable[None]]


def inject_trace_headers(headers: Mapping[str, str] | None = None) -> dict[str, str]:
    """`headers` plus `traceparent` (and `tracestate`) of the current span, if any."""
    out: dict[str, str] = dict(headers or {})
    propagate.inject(out)
    return out


def extract_trace_context(headers: Mapping[str, str] | None) -> Any:
    """The OpenTelemetry context a message's headers carry (empty context when none)."""
    carrier: MutableMapping[str, str] = dict(headers or {})
    return propagate.extract(carrier)


def _subject_family(subject: str) -> str:
    """`workflow.events.<tenant>.<type>` → `workflow.events`: span names stay bounded."""
    return ".".join(subject.split(".")[:2])


class TracingJetStreamContext(JetStreamContext):
    """JetStream whose `publish` opens a PRODUCER span and puts its `traceparent` in the
    message headers, so the consumer's span continues the publisher's trace."""

    def __init__(self, conn: NATS, tracer: trace.Tracer, **options: Any) -> None:
        super().__init__(conn, **options)
        self._tracer = tracer

    async def publish(
        self,
        subject: str,
        payload: bytes = b"",
        timeout: float | None = None,  # noqa: ASYNC109  # JetStreamContext.publish's signature
        stream: str | None = None,
        headers: dict[str, Any] | None = None,
        msg_ttl: float | None = None,
    ) -> api.PubAck:
        attributes: dict[str, str] = {
            "messaging.system": "nats",
            "messaging.destination.name": subject,
        }
        if headers and MSG_ID_HEADER in headers:
            attributes["messaging.message.id"] = str(headers[MSG_ID_HEADER])
        with self._tracer.start_as_current_span(
            f"{_subject_family(subject)} publish", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            return await super().publish(
                subject,
                payload,
                timeout=timeout,
                stream=stream,
                headers=inject_trace_headers(headers),
                msg_ttl=msg_ttl,
            )


def traced_jetstream(nc: NATS, provider: TracerProvider | None) -> JetStreamContext:
    """`nc.jetstream()`, with trace propagation on publish when tracing is on."""
    if provider is None:
        return nc.jetstream()
    return TracingJetStreamContext(nc, provider.get_tracer("stepwise.nats"))


def traced_message_handler(
    handler: MessageHandler, provider: TracerProvider | None
) -> MessageHandler:
    """Wrap a consumer's per-message handler in a CONSUMER span whose parent is the publisher's
    `traceparent`: whatever the handler does (signal, start) joins the producer's trace."""
    if provider is None:
        return handler
    tracer = provider.get_tracer("stepwise.nats")

    async def traced(msg: Msg) -> None:
        headers = msg.headers or {}
        attributes: dict[str, str] = {
            "messaging.system": "nats",
            "messaging.destination.name": msg.subject,
        }
        if MSG_ID_HEADER in headers:
            attributes["messaging.message.id"] = headers[MSG_ID_HEADER]
        with tracer.start_as_current_span(
            f"{_subject_family(msg.subject)} process",
            context=extract_trace_context(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        ):
            await handler(msg)

    return traced
