"""The JSON entry limits, the envelope decoder that uses them, and bounded exception logging."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import msgspec
import pytest
from stepwise_contract.envelope import EnvelopeError, decode_envelope
from stepwise_contract.json_limits import MAX_JSON_DEPTH, JsonRefused, check_json, decode_json
from stepwise_contract.schemas import InvalidSchemaError, check_schema, validate_instance


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_depth_limit_is_exact() -> None:
    check_json(nested(MAX_JSON_DEPTH), what="x")
    with pytest.raises(JsonRefused) as info:
        check_json(nested(MAX_JSON_DEPTH + 1), what="x")
    assert info.value.code == "JSON_TOO_DEEP"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "JSON_TOO_DEEP"),  # past msgspec's own recursion limit
        (b"[" * 65 + b"]" * 65, "JSON_TOO_DEEP"),
        (b'{"a": "\xc3\x28"}', "INVALID_JSON"),
        (b'{"a": ', "INVALID_JSON"),
        (b'{"a\\u0000": 1}', "INVALID_INPUT"),
        (b'["\\u0000"]', "INVALID_INPUT"),
    ],
)
def test_decode_json_refuses(raw: bytes, code: str) -> None:
    with pytest.raises(JsonRefused) as info:
        decode_json(raw, what="the body")
    assert info.value.code == code


def test_nul_may_be_allowed() -> None:
    assert decode_json(b'["\\u0000"]', what="x", refuse_nul=False) == ["\x00"]


def _envelope(payload: object) -> bytes:
    return msgspec.json.encode(
        {"event_id": str(uuid.uuid4()), "event_type": "E", "tenant": str(uuid.uuid4()),
         "payload": payload}
    )  # fmt: skip


def test_envelope_too_deep_or_not_utf8_is_a_dead_letter_reason() -> None:
    with pytest.raises(EnvelopeError) as info:
        decode_envelope(_envelope({"a": nested(80)}))
    assert info.value.code == "JSON_TOO_DEEP"
    with pytest.raises(EnvelopeError) as info:
        decode_envelope(b'{"event_id": "\xff"}')
    assert info.value.code == "INVALID_JSON"
    assert decode_envelope(_envelope({"a": nested(10)})).payload == {"a": nested(10)}


def test_schema_checks_are_bounded() -> None:
    deep: dict[str, object] = {"type": "string"}
    for _ in range(2000):
        deep = {"items": deep}
    with pytest.raises(InvalidSchemaError):
        check_schema(deep)
    recursive = {"$defs": {"n": {"type": "array", "items": {"$ref": "#/$defs/n"}}},
                 "$ref": "#/$defs/n"}  # fmt: skip
    [issue] = validate_instance(recursive, nested(5000))
    assert "too deep" in issue.message


SCRIPT = """
import sys
import structlog
from stepwise_contract.platform.logs import configure_logging

configure_logging(service="t", log_format=sys.argv[1])
log = structlog.get_logger("t")

def down(n, payload="L" * 1000):
    return down(n + 1, payload)

try:
    down(0)
except RecursionError:
    log.exception("request_failed")
try:
    raise ValueError("m" * 100_000)
except ValueError:
    log.exception("huge_message")
"""


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_exceptions_log_bounded_without_locals(log_format: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, log_format], capture_output=True, text=True, timeout=60
    )
    err = done.stderr
    assert "request_failed" in err and "RecursionError" in err and "huge_message" in err
    assert "LLLLLLLLLL" not in err, "locals are never rendered"
    assert len(err) < 20_000, f"{len(err)} characters for two exceptions"
    if log_format == "json":
        lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
        assert all("exception" in line for line in lines)
