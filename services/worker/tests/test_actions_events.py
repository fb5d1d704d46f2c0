"""event.publish@1 against the real nats-server: envelope, subject, Nats-Msg-Id dedupe of retries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import nats
import pytest
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError
from stepwise_contract.envelope import decode_envelope
from stepwise_contract.names import EVENTS_STREAM, EVENTS_SUBJECTS, MSG_ID_HEADER, event_subject
from stepwise_worker.actions.base import ActionContext, ActionFailure, Publisher, invoke
from stepwise_worker.actions.events import jetstream_publisher
from stepwise_worker.actions.registry import ActionRegistry

REGISTRY = ActionRegistry.default()


@pytest.fixture(scope="module")
async def js(nats_url: str) -> AsyncIterator[JetStreamContext]:
    nc = await nats.connect(nats_url)
    jsc = nc.jetstream()
    try:
        await jsc.add_stream(
            StreamConfig(
                name=EVENTS_STREAM,
                subjects=[EVENTS_SUBJECTS],
                storage=StorageType.FILE,
                duplicate_window=120,
            )
        )
    except BadRequestError:
        # another test module created it with its own settings: fine if it takes our subjects
        info = await jsc.stream_info(EVENTS_STREAM)
        assert EVENTS_SUBJECTS in (info.config.subjects or [])
    try:
        yield jsc
    finally:
        await nc.close()


def _ctx(tenant_id: str, publish: Publisher | None, key: str, attempt: int = 1) -> ActionContext:
    return ActionContext(
        tenant_id=tenant_id,
        run_id=str(uuid.uuid4()),
        step_path="root.steps[1]",
        attempt=attempt,
        idempotency_key=key,
        publish=publish,
    )


async def _publish(payload: dict[str, Any], ctx: ActionContext) -> dict[str, Any]:
    action = REGISTRY.get("event.publish", 1)
    assert action is not None
    assert action.declaration.local is True
    return await invoke(action, payload, ctx)


async def _count(js: JetStreamContext, subject: str) -> int:
    info = await js.stream_info(EVENTS_STREAM, subjects_filter=subject)
    return (info.state.subjects or {}).get(subject, 0)


async def test_publish_sends_an_envelope_for_the_runs_tenant(
    js: JetStreamContext, tenant_id: str
) -> None:
    ctx = _ctx(tenant_id, jetstream_publisher(js), key=f"{tenant_id}:run:root.steps[1]")
    out = await _publish(
        {"eventType": "TICKET_CLOSED", "correlationKey": "t-1", "payload": {"ticketId": "t-1"}},
        ctx,
    )
    event_id = out["eventId"]
    uuid.UUID(event_id)

    subject = event_subject(tenant_id, "TICKET_CLOSED")
    msg = await js.get_last_msg(EVENTS_STREAM, subject)
    assert (msg.headers or {}).get(MSG_ID_HEADER) == event_id
    assert msg.data is not None
    env = decode_envelope(msg.data)
    assert env.event_id == event_id
    assert (env.event_type, env.name, env.tenant) == ("TICKET_CLOSED", "TICKET_CLOSED", tenant_id)
    assert env.workflow_correlation_key == "t-1"
    assert env.payload == {"ticketId": "t-1"}
    assert env.execution_id == ctx.run_id
    assert env.timestamp is not None
    assert datetime.fromisoformat(env.timestamp).tzinfo is not None


async def test_a_retried_publish_is_deduplicated(js: JetStreamContext, tenant_id: str) -> None:
    publisher = jetstream_publisher(js)
    payload = {"eventType": "ORDER_PAID", "payload": {"n": 1}}
    first = await _publish(payload, _ctx(tenant_id, publisher, key="same-call", attempt=1))
    retry = await _publish(payload, _ctx(tenant_id, publisher, key="same-call", attempt=2))
    assert retry["eventId"] == first["eventId"]
    other = await _publish(payload, _ctx(tenant_id, publisher, key="another-call"))
    assert other["eventId"] != first["eventId"]
    assert await _count(js, event_subject(tenant_id, "ORDER_PAID")) == 2


async def test_no_publisher_is_transient(tenant_id: str) -> None:
    with pytest.raises(ActionFailure) as info:
        await _publish({"eventType": "X", "payload": {}}, _ctx(tenant_id, None, key="k"))
    assert (info.value.category, info.value.code, info.value.retryable) == (
        "TransientError",
        "PUBLISHER_UNAVAILABLE",
        True,
    )


async def test_a_failing_publish_is_transient(nats_url: str, tenant_id: str) -> None:
    nc = await nats.connect(nats_url)
    publisher = jetstream_publisher(nc.jetstream(), timeout_s=1.0)
    await nc.close()
    with pytest.raises(ActionFailure) as info:
        await _publish({"eventType": "X", "payload": {}}, _ctx(tenant_id, publisher, key="k"))
    assert (info.value.category, info.value.code) == ("TransientError", "PUBLISH_FAILED")


@pytest.mark.parametrize(
    "payload",
    [
        {"eventType": "A B", "payload": {}},
        {"eventType": "A.*", "payload": {}},
        {"eventType": "A.>", "payload": {}},
        {"eventType": "A..B", "payload": {}},
        {"eventType": "", "payload": {}},
        {"eventType": "A"},
        {"eventType": "A", "payload": []},
    ],
)
async def test_invalid_input_is_refused_before_publishing(
    js: JetStreamContext, tenant_id: str, payload: dict[str, Any]
) -> None:
    with pytest.raises(ActionFailure) as info:
        await _publish(payload, _ctx(tenant_id, jetstream_publisher(js), key="k"))
    assert (info.value.category, info.value.code) == ("ValidationError", "INVALID_ACTION_INPUT")
    info_all = await js.stream_info(EVENTS_STREAM, subjects_filter=f"workflow.events.{tenant_id}.>")
    assert not info_all.state.subjects
