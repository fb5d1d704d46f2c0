"""Limits on JSON that enters from outside: nesting depth, NUL characters, undecodable bytes.

Every entry checks them once — API request bodies, events from NATS, action inputs and outputs —
so the code behind (the redactor, schema checks, hashing, Postgres `jsonb`) only ever meets
documents it can walk without exhausting the stack. The check itself is iterative.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

# Objects and arrays nested inside each other; `{}` is depth 1, `{"a": []}` depth 2.
MAX_JSON_DEPTH: Final = 64


class JsonRefused(ValueError):
    """The document breaks a limit; `code` is the stable error code answered for it."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def too_deep(what: str, max_depth: int = MAX_JSON_DEPTH) -> JsonRefused:
    detail = f"{what} nests objects/arrays deeper than {max_depth} levels"
    return JsonRefused("JSON_TOO_DEEP", detail)


def check_json(
    value: Any, *, what: str, max_depth: int = MAX_JSON_DEPTH, refuse_nul: bool = True
) -> None:
    """Raise `JsonRefused` when `value` nests deeper than `max_depth` or (with `refuse_nul`)
    holds a NUL character: Postgres `jsonb` cannot store `\\u0000`, so it would fail every retry.

    Walks one level at a time: the per-node work is C-level list building and one `join` of the
    level's strings and keys (a 600 KB document of 70,000 nodes checks in a few milliseconds).
    """
    if isinstance(value, str):
        if refuse_nul and "\x00" in value:
            raise _nul(what)
        return
    level = [value] if isinstance(value, dict | list | tuple) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise too_deep(what, max_depth)
        children: list[Any] = []
        keys: list[Any] = []
        for container in level:
            if isinstance(container, dict):
                children.extend(container.values())
                keys.extend(container)
            else:
                children.extend(container)
        if refuse_nul:
            texts = [v for v in children if type(v) is str]
            texts.extend(k for k in keys if type(k) is str)
            if "\x00" in "".join(texts):
                raise _nul(what)
        level = [v for v in children if isinstance(v, dict | list | tuple)]


def _nul(what: str) -> JsonRefused:
    return JsonRefused("INVALID_INPUT", f"{what} contains a NUL character (\\u0000)")


def decode_json(
    raw: bytes, *, what: str, max_depth: int = MAX_JSON_DEPTH, refuse_nul: bool = True
) -> Any:
    """Decode and check `raw`; malformed JSON or bytes that are not UTF-8 raise `JsonRefused`
    with code `INVALID_JSON`."""
    try:
        value = msgspec.json.decode(raw)
    except RecursionError:
        raise too_deep(what, max_depth) from None
    except UnicodeDecodeError:
        raise JsonRefused("INVALID_JSON", f"{what} is not valid UTF-8") from None
    except msgspec.DecodeError as exc:
        raise JsonRefused("INVALID_JSON", f"malformed JSON: {exc}") from None
    check_json(value, what=what, max_depth=max_depth, refuse_nul=refuse_nul)
    return value
