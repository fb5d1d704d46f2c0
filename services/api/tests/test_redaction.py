"""The redaction function (SPEC §9) on its own."""

from __future__ import annotations

import copy

from stepwise_api.redaction import Redactor


def test_default_keys_secret_refs_and_nesting() -> None:
    doc = {
        "API_KEY": "a",
        "api-key": "b",
        "clientSecret": "c",
        "refreshToken": "d",
        "authorization": {"nested": "whole value goes"},
        "list": [{"password": "e"}, {"fine": 1}],
        "ref": {"$secret": "NAME"},
        "keep": "visible",
    }
    original = copy.deepcopy(doc)
    out = Redactor().document(doc)
    assert out == {
        "API_KEY": "[REDACTED]",
        "api-key": "[REDACTED]",
        "clientSecret": "[REDACTED]",
        "refreshToken": "[REDACTED]",
        "authorization": "[REDACTED]",
        "list": [{"password": "[REDACTED]"}, {"fine": 1}],
        "ref": {"$secret": "[SECRET:REDACTED]"},
        "keep": "visible",
    }
    assert doc == original  # never modified in place


def test_tenant_patterns_and_pointers() -> None:
    redactor = Redactor.from_settings(
        ["/^ssn$/i", "email", "([invalid"], ["/customer/card", "#/items/1", "/missing/x", "bad"]
    )
    doc = {
        "SSN": "1",
        "contactEmail": "x@y",
        "customer": {"card": {"number": "4111"}, "name": "Ada"},
        "items": ["a", "b", "c"],
    }
    assert redactor.document(doc) == {
        "SSN": "[REDACTED]",
        "contactEmail": "[REDACTED]",
        "customer": {"card": "[REDACTED]", "name": "Ada"},
        "items": ["a", "[REDACTED]", "c"],
    }


def test_root_pointer_and_non_objects() -> None:
    assert Redactor.from_settings([], ["/"]).document({"a": 1}) == "[REDACTED]"
    assert Redactor().document(None) is None
    assert Redactor().document("text") == "text"
    assert Redactor.from_settings([], ["/0/password"]).document([{"x": 1}]) == [{"x": 1}]


def test_a_document_nested_past_the_read_depth_is_cut_not_a_crash() -> None:
    from stepwise_api.redaction import MAX_READ_DEPTH, TOO_DEEP

    deep: object = {"password": "p"}
    for _ in range(5000):
        deep = {"a": [deep]}
    out = Redactor().document(deep)
    node = out
    for _ in range(MAX_READ_DEPTH // 2 - 1):
        node = node["a"][0]
    assert node == {"a": [TOO_DEEP]}


def test_huge_strings_of_a_large_document_are_cut_with_a_marker() -> None:
    from stepwise_api.redaction import KEPT_CHARS, MAX_READ_STRING

    doc = {"status": 200, "chunks": ["x" * 300_000 for _ in range(5)], "small": "y" * 100}
    out = Redactor().document(doc)
    assert out["status"] == 200 and out["small"] == "y" * 100
    assert out["chunks"][0] == "x" * KEPT_CHARS + "…[TRUNCATED: 300000 characters]"
    below = {"one": "x" * (MAX_READ_STRING + 1)}
    assert Redactor().document(below) == below, "a document under the read limit is whole"
