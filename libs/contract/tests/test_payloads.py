"""Every contract Struct round-trips through the Temporal converter and through JSON."""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
import pytest
from stepwise_contract import envelope, http, payloads
from stepwise_contract.converter import DATA_CONVERTER

SAMPLES: list[Any] = [
    payloads.RunInput(
        run_id="r",
        tenant_id="t",
        workflow_id="w",
        workflow_version=3,
        trigger_type="event",
        execution_key="k",
    ),
    payloads.RunInput(
        run_id="r",
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        checkpoint=payloads.Checkpoint(
            state={"vars": {"a": 1}},
            pending_signals=[payloads.PendingSignal(kind="event", body={"eventId": "e"})],
            steps_executed=7,
        ),
    ),
    payloads.RunInput(
        run_id="r",
        tenant_id="t",
        workflow_id="w",
        workflow_version=1,
        checkpoint=payloads.Checkpoint(
            state={},
            inbox=[
                payloads.PendingEvent(event_id="e", event_name="N", payload={"a": 1}),
                payloads.PendingHumanTask(task_id="t", payload={"ok": True}),
                payloads.PendingQuotaResume(wait_id="w", reason="limit raised"),
            ],
        ),
    ),
    payloads.RunInput(
        run_id="r",
        tenant_id="t",
        workflow_id="w",
        workflow_version=2,
        preloaded=payloads.PreloadedRun(
            definition={"name": "x", "steps": []},
            definition_hash="h",
            payload={"a": 1},
            actions={"core.echo@1": payloads.ActionFacts(local=True, timeout_s=30.0)},
        ),
    ),
    payloads.RunResult(run_id="r", status="SUCCEEDED", payload={"x": 1}, vars={}, meta={}),  # type: ignore[arg-type]
    payloads.EventSignal(
        event_id="e",
        event_name="N",
        correlation_key="k",
        payload={"a": [1]},
        received_at="2026-01-01T00:00:00Z",
    ),
    payloads.HumanTaskSignal(task_id="t", payload={"ok": True}),
    payloads.QuotaResumeSignal(wait_id="w", reason="limit raised", resumed_by="sweeper"),
    payloads.CurrentStep(step_path="root.steps[0]", step_id="a", step_type="action.call"),
    payloads.CurrentWait(wait_id="w", wait_type="event", event_name="N", key="k"),
    payloads.InterpreterSummary(run_id="r", status="RUNNING", steps_executed=2),
    envelope.EventEnvelope(event_id="e", event_type="T", tenant="t", payload={"a": 1}),
    http.CreateDefinitionRequest(definition={"name": "x", "steps": []}, key="k"),
    http.ReplaceDefinitionRequest(definition={"name": "x", "steps": []}),
    http.PatchDefinitionRequest(is_paused=True, concurrency_limit=None),
    http.PublishRequest(version=2),
    http.LaunchRequest(workflow_id="w", payload={"a": 1}),
    http.CancelRequest(reason="because"),
    http.ReplayRequest(reason="again", payload={"a": 2}),
    http.ReplayRequest(reason="again"),
    http.QuotaResumeRequest(reason="x"),
    http.PublishEventRequest(event_name="N", correlation_key="k", payload={}),
    http.CompleteTaskRequest(payload={"approved": True}),
]


def test_every_struct_has_a_sample() -> None:
    structs = {
        obj
        for module in (payloads, envelope, http)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, msgspec.Struct)
        and obj.__module__ == module.__name__
        and obj not in (payloads.TemporalPayload, http.Body)
    }
    sampled = {type(s) for s in SAMPLES}
    # covered inside RunInput's checkpoints and preloaded run
    inside = {
        payloads.PendingSignal,
        payloads.Checkpoint,
        payloads.PendingEvent,
        payloads.PendingHumanTask,
        payloads.PendingQuotaResume,
        payloads.PreloadedRun,
        payloads.ActionFacts,
    }
    assert structs - sampled <= inside


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip_temporal_converter(value: Any) -> None:
    converter = DATA_CONVERTER.payload_converter
    [payload] = converter.to_payloads([value])
    assert payload.metadata["encoding"] == b"json/plain"
    [back] = converter.from_payloads([payload], [type(value)])
    assert back == value


@pytest.mark.parametrize("value", SAMPLES, ids=lambda v: type(v).__name__)
def test_round_trip_json(value: Any) -> None:
    assert msgspec.json.decode(msgspec.json.encode(value), type=type(value)) == value


def test_camel_case_on_the_wire() -> None:
    data = msgspec.json.decode(msgspec.json.encode(SAMPLES[0]))
    assert {"runId", "tenantId", "workflowId", "workflowVersion", "triggerType"} <= set(data)


def test_http_bodies_reject_unknown_fields() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"workflowId": "w", "bogus": 1}', type=http.LaunchRequest)


def test_replay_distinguishes_absent_payload() -> None:
    absent = msgspec.json.decode(b'{"reason": "abc"}', type=http.ReplayRequest)
    assert absent.payload is msgspec.UNSET
    given = msgspec.json.decode(b'{"reason": "abc", "payload": {}}', type=http.ReplayRequest)
    assert given.payload == {}


def test_envelope_validation() -> None:
    good = (
        b'{"event_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "event_type": "T",'
        b' "tenant": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "extra": 1}'
    )
    env = envelope.decode_envelope(good)
    assert env.name == "T"
    with pytest.raises(envelope.EnvelopeError) as err:
        envelope.decode_envelope(b"not json")
    assert err.value.code == "INVALID_JSON"
    with pytest.raises(envelope.EnvelopeError) as err:
        envelope.decode_envelope(b'{"event_id": "x", "event_type": "T", "tenant": "t"}')
    assert err.value.code == "INVALID_ENVELOPE"
