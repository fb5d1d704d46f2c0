"""Secret positions and the scrubber, without Temporal (the end-to-end cases are in
test_interp_actions.py)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

import pytest
from stepwise_contract.platform.secrets import SECRET_REDACTED
from stepwise_worker.activities.secret_refs import Scrubber, declared_refs, redact, substitute
from stepwise_worker.workflow.secret_positions import declared_secret_paths

SECRET = "Sup3r-S3cret/Value+42"


def test_positions_are_the_literal_refs_only() -> None:
    mapping = {
        "a": {"$secret": "A"},
        "b": [1, {"$secret": "B"}, {"$expr": "payload"}],
        "c": {"$expr": "{'$secret': 'C'}"},
        "d": {"e": {"f": {"$secret": "A"}}},
    }
    assert declared_secret_paths(mapping) == [["a"], ["b", 1], ["d", "e", "f"]]


def test_only_declared_refs_are_resolved() -> None:
    data = {"$secret": "A"}
    resolved = {"a": {"$secret": "A"}, "b": [data, {"$secret": "B"}], "x": {"nested": data}}
    refs = declared_refs(resolved, [["a"], ["b", 1], ["gone"], ["a", "deeper"]])
    assert refs == {("a",): "A", ("b", 1): "B"}
    assert substitute(resolved, refs, {"A": "1", "B": "2"}) == {
        "a": "1",
        "b": [data, "2"],
        "x": {"nested": data},
    }
    assert redact(resolved, refs)["a"] == SECRET_REDACTED
    assert resolved["a"] == {"$secret": "A"}, "the input is not modified"


@pytest.mark.parametrize(
    "derived",
    [
        SECRET,
        SECRET.upper(),
        SECRET.lower(),
        json.dumps(SECRET),
        json.dumps({"k": SECRET}),
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        SECRET.encode().hex(),
        base64.b64encode(SECRET.encode()).decode(),
        base64.b64encode(b"x" + SECRET.encode()).decode(),
        base64.urlsafe_b64encode(b"xy" + SECRET.encode()).decode(),
        SECRET[2:10],
        "prefix " + SECRET[5:] + " suffix",
    ],
)
def test_derived_forms_are_scrubbed(derived: str) -> None:
    out = Scrubber([SECRET]).text(derived)
    assert SECRET_REDACTED in out
    for window in (SECRET[i : i + 8] for i in range(len(SECRET) - 7)):
        assert window.lower() not in out.lower()


def test_unrelated_text_and_short_pieces_are_kept() -> None:
    scrubber = Scrubber([SECRET])
    assert scrubber.text("nothing to see here") == "nothing to see here"
    assert scrubber.text(SECRET[:7]) == SECRET[:7], "pieces under 8 characters are documented"
    assert scrubber.value({SECRET: [SECRET.upper(), 1, None]}) == {
        SECRET_REDACTED: [SECRET_REDACTED, 1, None]
    }
    assert not Scrubber([]) and Scrubber([]).value({"a": SECRET}) == {"a": SECRET}


def test_scrubbing_a_deep_value_is_bounded() -> None:
    deep: object = SECRET
    for _ in range(5000):
        deep = [deep]
    assert Scrubber([SECRET]).value(deep) is not None


def test_a_long_secret_is_scrubbed_from_short_pieces_too() -> None:
    key = "".join(chr(ord("a") + (i * 7) % 26) + str(i % 10) for i in range(300))  # 600 chars
    scrubber = Scrubber([key])
    piece = key[100:109]
    assert scrubber.text(piece) == SECRET_REDACTED
    assert (
        scrubber.text(f"before {key[250:400].upper()} after") == f"before {SECRET_REDACTED} after"
    )
