"""`transform.*@1`: pure data helpers, no I/O (SPEC §6; each documented in docs/actions.md).

Regular expressions run on RE2, the same linear-time engine as expressions: a backtracking engine
(`re`) runs a pattern such as `(a|aa)+$` for minutes on a 40-character input while holding the
GIL, freezing every run on the worker. RE2 matches in time linear in the input and refuses what it
cannot do that way (backreferences, lookaround) as `INVALID_REGEX`. Matching still runs in a thread
so a long input never stalls the worker's event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
import re2

from stepwise_worker.actions.base import ActionContext, ActionFailure, JSONObject

_encode = msgspec.json.Encoder().encode
_encode_sorted = msgspec.json.Encoder(order="sorted").encode
_decode = msgspec.json.Decoder().decode

MAX_REGEX_MATCHES: Final = 10_000


# --- pick / rename -------------------------------------------------------------------------------


def _pick_path(src: dict[str, Any], parts: list[str], dst: dict[str, Any]) -> None:
    head, rest = parts[0], parts[1:]
    if head not in src:
        return
    if not rest:
        dst[head] = src[head]
        return
    inner = src[head]
    if not isinstance(inner, dict):
        return
    existing = dst.get(head)
    if existing is inner:
        return  # the whole object was picked already
    node = existing if isinstance(existing, dict) else {}
    _pick_path(inner, rest, node)
    if node:
        dst[head] = node


async def transform_pick(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    source: dict[str, Any] = payload["value"]
    out: dict[str, Any] = {}
    for field in payload["fields"]:
        _pick_path(source, field.split("."), out)
    return {"value": out}


async def transform_rename(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    source: dict[str, Any] = payload["value"]
    mapping: dict[str, str] = payload["mapping"]
    out = {k: v for k, v in source.items() if k not in mapping}
    # renamed keys are written last so they win over an untouched key of the same name
    out.update({mapping[k]: v for k, v in source.items() if k in mapping})
    return {"value": out}


# --- text ---


def _text_of(v: Any) -> str:
    """A join element as text; numbers render as in JSON (5, not 5.0)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _text_op(payload: JSONObject) -> Any:
    value = payload["value"]
    match payload["op"]:
        case "upper":
            return value.upper()
        case "lower":
            return value.lower()
        case "trim":
            return value.strip(payload.get("chars"))
        case "replace":
            count = payload.get("count", 0)
            return value.replace(payload["search"], payload["replacement"], count or -1)
        case "split":
            return value.split(payload.get("separator"), payload.get("maxSplits", -1))
        case "join":
            return str(payload.get("separator", "")).join(_text_of(v) for v in value)
    raise AssertionError(f"op {payload['op']} passed the schema but has no implementation")


async def transform_text(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    return {"value": _text_op(payload)}


# --- regex ---


def _compile(pattern: str, flags: str) -> Any:
    options = re2.Options()
    options.case_sensitive = "i" not in flags
    options.dot_nl = "s" in flags
    options.log_errors = False
    try:
        return re2.compile(f"(?m){pattern}" if "m" in flags else pattern, options)
    except re2.error as exc:
        raise ActionFailure(
            f"invalid regular expression: {exc}", category="ValidationError", code="INVALID_REGEX"
        ) from None


def _match_info(m: Any) -> JSONObject:
    return {
        "match": m.group(0),
        "index": m.start(),
        "groups": list(m.groups()),
        "namedGroups": m.groupdict(),
    }


def _regex_op(payload: JSONObject) -> JSONObject:
    compiled = _compile(payload["pattern"], payload.get("flags", ""))
    value: str = payload["value"]
    count: int = payload.get("count", 0)
    match payload["op"]:
        case "match":
            m = compiled.search(value)
            if m is None:
                return {
                    "matched": False,
                    "match": None,
                    "index": None,
                    "groups": [],
                    "namedGroups": {},
                }
            return {"matched": True, **_match_info(m)}
        case "extract":
            limit = min(count or MAX_REGEX_MATCHES, MAX_REGEX_MATCHES)
            matches: list[JSONObject] = []
            for m in compiled.finditer(value):
                matches.append(_match_info(m))
                if len(matches) >= limit:
                    break
            return {"matches": matches}
        case "replace":
            try:
                replaced, n = compiled.subn(payload["replacement"], value, count=count)
            except (re2.error, IndexError) as exc:
                raise ActionFailure(
                    f"invalid replacement: {exc}",
                    category="ValidationError",
                    code="INVALID_REGEX",
                ) from None
            return {"value": replaced, "replacements": n}
    raise AssertionError(f"op {payload['op']} passed the schema but has no implementation")


async def transform_regex(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    return await asyncio.to_thread(_regex_op, payload)


# --- JSON ---


async def transform_json_parse(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    try:
        return {"value": _decode(payload["text"])}
    except msgspec.DecodeError as exc:
        raise ActionFailure(f"text is not JSON: {exc}", code="INVALID_JSON") from None
    except RecursionError:
        raise ActionFailure(
            "text nests too deep to parse", category="ValidationError", code="JSON_TOO_DEEP"
        ) from None


async def transform_json_stringify(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    encode = _encode_sorted if payload.get("sortKeys") else _encode
    text = encode(payload["value"])
    if payload.get("pretty"):
        text = msgspec.json.format(text, indent=2)
    return {"text": text.decode()}


# --- build ---


async def transform_build_object(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    out: dict[str, Any] = {}
    for obj in payload.get("merge", []):
        out.update(obj)
    for entry in payload.get("entries", []):
        out[entry["key"]] = entry.get("value")
    if payload.get("omitNull"):
        out = {k: v for k, v in out.items() if v is not None}
    return {"value": out}


async def transform_build_array(payload: JSONObject, _ctx: ActionContext) -> JSONObject:
    items: list[Any] = []
    for item in payload["items"]:
        if payload.get("flatten") and isinstance(item, list):
            items.extend(item)
        else:
            items.append(item)
    if payload.get("omitNull"):
        items = [i for i in items if i is not None]
    if payload.get("unique"):
        seen: set[bytes] = set()
        unique: list[Any] = []
        for i in items:
            key = _encode_sorted(i)  # JSON equality: {"a":1,"b":2} == {"b":2,"a":1}
            if key not in seen:
                seen.add(key)
                unique.append(i)
        items = unique
    return {"value": items}
