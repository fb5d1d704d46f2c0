"""Correlation keys (SPEC §8 step 4) and the trigger payload mapping, as pure functions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from stepwise_contract.envelope import EventEnvelope
from stepwise_router.correlation import Correlation
from stepwise_router.settings import DEFAULT_CORRELATION_PATHS
from stepwise_router.triggers import build_payload


def envelope(event_type: str = "X", payload: Any = None, key: str | None = None) -> EventEnvelope:
    return EventEnvelope(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        tenant=str(uuid.uuid4()),
        payload=payload,
        workflow_correlation_key=key,
    )


def test_explicit_key_is_the_only_key() -> None:
    keys = Correlation(DEFAULT_CORRELATION_PATHS).keys(
        envelope(payload={"ticketId": "T"}, key="  K  ")
    )
    assert keys == ["K"]


def test_blank_explicit_key_falls_back_to_derived_keys() -> None:
    keys = Correlation(DEFAULT_CORRELATION_PATHS).keys(envelope(payload={"ticketId": "T"}, key=" "))
    assert keys == ["T"]


def test_type_paths_then_wildcard_paths_deduplicated_in_order() -> None:
    correlation = Correlation(
        {"INVOICE_SENT": ["invoice.id", "clientId"], "*": ["clientId", "ticketId"]}
    )
    payload = {"invoice": {"id": 42}, "clientId": " C-1 ", "ticketId": "T-1"}
    assert correlation.keys(envelope("INVOICE_SENT", payload)) == ["42", "C-1", "T-1"]
    assert correlation.keys(envelope("OTHER", payload)) == ["C-1", "T-1"]


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (5, "5"),
        (5.0, "5"),
        (2.5, "2.5"),
        (True, "true"),
        ("", None),
        ("   ", None),
        (None, None),
        ({"a": 1}, None),
        ([1], None),
    ],
)
def test_only_scalars_become_keys(value: Any, key: str | None) -> None:
    keys = Correlation({"*": ["v"]}).keys(envelope(payload={"v": value}))
    assert keys == ([key] if key else [])


def test_paths_may_start_with_dollar_and_index_lists() -> None:
    correlation = Correlation({"*": ["$.items.1.sku", "items.9.sku", "missing.deep"]})
    assert correlation.keys(envelope(payload={"items": [{"sku": "a"}, {"sku": "b"}]})) == ["b"]


def test_no_payload_no_keys() -> None:
    assert Correlation(DEFAULT_CORRELATION_PATHS).keys(envelope(payload=None)) == []


def test_mapping_expands_dotted_keys_and_sees_the_event() -> None:
    env = envelope("TICKET_CREATED", {"ticketId": "T-1", "p": 3})
    payload, errors = build_payload(
        env,
        "T-1",
        {
            "payloadMapping": {
                "ticket.id": {"$expr": "event.payload.ticketId"},
                "ticket.priority": {"$expr": "event.payload.p * 2"},
                "name": {"$expr": "event.name"},
                "key": {"$expr": "event.correlationKey"},
                "dropped": {"$expr": "event.payload.nothing"},
                "literal": [1, {"$expr": "event.payload.p"}],
            }
        },
        {"type": "object", "required": ["ticket"]},
    )
    assert errors == []
    assert payload == {
        "ticket": {"id": "T-1", "priority": 6},
        "name": "TICKET_CREATED",
        "key": "T-1",
        "literal": [1, 3],
    }


def test_no_mapping_passes_the_event_payload_through() -> None:
    payload, errors = build_payload(envelope(payload={"a": 1}), None, {"eventName": "X"}, None)
    assert (payload, errors) == ({"a": 1}, [])


def test_mapping_and_schema_failures_are_reported_per_path() -> None:
    _, errors = build_payload(
        envelope(payload={}), None, {"payloadMapping": {"x": {"$expr": "$random()"}}}, None
    )
    assert [e["path"] for e in errors] == ["/trigger/payloadMapping/x"]
    _, errors = build_payload(
        envelope(payload={"n": "one"}),
        None,
        {},
        {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["m"]},
    )
    assert sorted(e["path"] for e in errors) == ["/", "/n"]
