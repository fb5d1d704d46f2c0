"""The typed inbox across continue-as-new: what a checkpoint carries decodes whichever shape it
was written in (running workflows hold checkpoints of the untyped `{kind, body}` form)."""

from __future__ import annotations

import json
from base64 import b64decode
from pathlib import Path

import msgspec
from stepwise_contract.converter import DATA_CONVERTER
from stepwise_contract.payloads import (
    Checkpoint,
    EventSignal,
    HumanTaskSignal,
    InboxSignal,
    PendingEvent,
    PendingHumanTask,
    PendingQuotaResume,
    PendingSignal,
    QuotaResumeSignal,
    RunInput,
)
from stepwise_worker.workflow.checkpoint import carried_signals, restore_inbox
from stepwise_worker.workflow.inbox import Inbox

HISTORIES = Path(__file__).parent / "histories"
CONVERTER = DATA_CONVERTER.payload_converter


def _started_input(history: str) -> RunInput:
    """The input of a recorded run continued as new (the checkpoint a worker wrote then)."""
    events = json.loads((HISTORIES / history).read_text())["events"]
    payload = events[0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    data = b64decode(payload["data"])
    run: RunInput = msgspec.json.decode(data, type=RunInput)
    return run


def test_a_recorded_checkpoint_of_the_untyped_inbox_decodes() -> None:
    for history in ("continue_as_new_second.json", "continue_as_new_v1_second.json"):
        checkpoint = _started_input(history).checkpoint
        assert checkpoint is not None
        assert checkpoint.inbox == [] and len(checkpoint.pending_signals) == 1
        [carried] = carried_signals(checkpoint)
        assert isinstance(carried, PendingEvent)
        assert carried.event_name == "LATE" and carried.payload == {"late": True}
        assert carried.event_id == checkpoint.pending_signals[0].body["eventId"]


def test_every_old_kind_decodes_and_what_never_could_is_dropped() -> None:
    old = Checkpoint(
        state={},
        pending_signals=[
            PendingSignal(kind="event", body={"eventId": "e1", "eventName": "E"}),
            PendingSignal(kind="human", body={"taskId": "t1", "payload": {"ok": True}}),
            PendingSignal(kind="quota", body={"waitId": "w1", "reason": "raised"}),
            PendingSignal(kind="event", body={"eventName": "no id"}),
            PendingSignal(kind="human", body="not an object"),
            PendingSignal(kind="telegram", body={"eventId": "e2", "eventName": "E"}),
        ],
    )
    assert carried_signals(old) == [
        PendingEvent(event_id="e1", event_name="E"),
        PendingHumanTask(task_id="t1", payload={"ok": True}),
        PendingQuotaResume(wait_id="w1", reason="raised"),
    ]


def test_a_new_checkpoint_round_trips_typed() -> None:
    inbox: list[InboxSignal] = [
        PendingEvent(event_id="e", event_name="E", correlation_key="k", payload={"a": [1]}),
        PendingHumanTask(task_id="t", payload={"approved": True}),
        PendingQuotaResume(wait_id="w", reason="limit raised", resumed_by="sweeper"),
    ]
    run = RunInput(
        run_id="r", tenant_id="t", workflow_id="w", workflow_version=1,
        checkpoint=Checkpoint(state={"consumedEventIds": ["old"]}, inbox=inbox, steps_executed=9),
    )  # fmt: skip
    [payload] = CONVERTER.to_payloads([run])
    assert b'"kind":"human"' in payload.data
    [back] = CONVERTER.from_payloads([payload], [RunInput])
    assert back.checkpoint is not None and carried_signals(back.checkpoint) == inbox

    target = Inbox()
    delivered = PendingEvent(event_id="new", event_name="E")
    target.add(delivered)  # arrived on the new run before it restored
    restore_inbox(target, back.checkpoint)
    assert target.signals == [*inbox, delivered]
    assert target.consumed_event_ids == ["old"]


def test_signals_as_senders_encode_them_decode_as_inbox_entries() -> None:
    """The API, router and sweeper send the untagged signal Structs; the handlers take the tagged
    inbox types, so a signal is decoded once, straight into what the inbox stores."""
    sent: list[tuple[msgspec.Struct, type[InboxSignal]]] = [
        (EventSignal(event_id="e", event_name="E", payload={"x": 1}), PendingEvent),
        (HumanTaskSignal(task_id="t", payload={"ok": True}), PendingHumanTask),
        (QuotaResumeSignal(wait_id="w", reason="r", resumed_by="api"), PendingQuotaResume),
    ]
    for signal, kind in sent:
        [payload] = CONVERTER.to_payloads([signal])
        assert b'"kind"' not in payload.data, "the signal's wire shape has no tag"
        [received] = CONVERTER.from_payloads([payload], [kind])
        assert isinstance(received, kind)
        tag = received.__struct_config__.tag
        assert msgspec.to_builtins(received) == {"kind": tag, **msgspec.to_builtins(signal)}


def test_the_inbox_takes_by_type_and_forgets_consumed_events() -> None:
    inbox = Inbox()
    for signal in (
        PendingHumanTask(task_id="t"),
        PendingEvent(event_id="a", event_name="E"),
        PendingEvent(event_id="b", event_name="E"),
        PendingEvent(event_id="a", event_name="E"),  # the same event delivered twice
    ):
        inbox.add(signal)
    assert inbox.take(PendingQuotaResume, lambda _s: True) is None
    taken = inbox.take(PendingEvent, lambda e: e.event_name == "E")
    assert taken is not None and taken.event_id == "a"
    inbox.mark_consumed("a")
    assert inbox.is_consumed("a")
    assert [s for s in inbox.signals if isinstance(s, PendingEvent)] == [
        PendingEvent(event_id="b", event_name="E")
    ]
    inbox.drop(PendingHumanTask, lambda s: s.task_id == "t")
    assert not inbox.has(PendingHumanTask, lambda _s: True)
