"""Action declarations: the catalog the API validates against and the worker executes (SPEC §6).

Handlers live in the worker; the declarations (id, version, schemas, timeout, local or regular
activity) live here so the API can validate a definition without importing the worker. Host
applications add actions through the entry-point group `stepwise.actions`: each entry point loads
an object with the `ActionSpec` attributes (and, for the worker, an async `handler(input, ctx)`).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import Any, Final, Protocol

import msgspec

from stepwise_contract import dsl
from stepwise_contract.payloads import ActionFacts

ENTRY_POINT_GROUP: Final = "stepwise.actions"


class ActionSpec(Protocol):
    id: str
    version: int
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    timeout_s: float
    local: bool


class ActionDeclaration(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    version: int
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    timeout_s: float = 30.0
    # fast and in-process → local activity; external I/O or long → regular activity
    local: bool = True
    description: str = ""


def _obj(
    props: dict[str, Any], required: Iterable[str] = (), extra: bool = False
) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(required),
        "additionalProperties": extra,
    }


_ANY: Final[dict[str, Any]] = {}
_STR: Final = {"type": "string"}
_INT: Final = {"type": "integer"}
_BOOL: Final = {"type": "boolean"}
_OBJECT: Final = {"type": "object"}
_SCALAR: Final = {"type": ["string", "number", "boolean", "null"]}
_NS_KEY: Final = {
    "namespace": {"type": "string", "minLength": 1, "maxLength": 200},
    "key": {"type": "string", "minLength": 1, "maxLength": 1024},
}
# a year, as the reference system allows
_TTL: Final = {"type": "integer", "minimum": 1, "maximum": 31_536_000}
_STORE_ITEM: Final = _obj(
    {
        "key": _STR,
        "value": _ANY,
        "revision": _INT,
        "expiresAt": {"type": ["string", "null"]},
    },
    required=["key", "value", "revision", "expiresAt"],
)
# event types become NATS subject tokens: no wildcards, whitespace or empty tokens
_EVENT_TYPE: Final = {"type": "string", "pattern": r"^[^.*>\s]+(\.[^.*>\s]+)*$"}


def _when(op: str | list[str], then: dict[str, Any]) -> dict[str, Any]:
    """`then` applies when the input's `op` is `op` (or one of them)."""
    cond = {"enum": op} if isinstance(op, list) else {"const": op}
    return {"if": {"properties": {"op": cond}, "required": ["op"]}, "then": then}


def _with(schema: dict[str, Any], *rules: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "allOf": list(rules)}


_TEXT_OPS: Final = ["upper", "lower", "trim", "replace", "split", "join"]
_REGEX_OPS: Final = ["match", "extract", "replace"]
_REGEX_MATCH: Final = _obj(
    {
        "match": _STR,
        "index": _INT,
        "groups": {"type": "array", "items": {"type": ["string", "null"]}},
        "namedGroups": {"type": "object", "additionalProperties": {"type": ["string", "null"]}},
    },
    required=["match", "index", "groups", "namedGroups"],
)

TRANSFORM_ACTIONS: Final[tuple[ActionDeclaration, ...]] = (
    ActionDeclaration(
        id="transform.pick",
        version=1,
        timeout_s=5.0,
        input_schema=_obj(
            {
                "value": _OBJECT,
                "fields": {"type": "array", "items": {"type": "string", "minLength": 1}},
            },
            required=["value", "fields"],
        ),
        output_schema=_obj({"value": _OBJECT}, required=["value"]),
        description="keeps only the listed fields (dotted paths reach into nested objects)",
    ),
    ActionDeclaration(
        id="transform.rename",
        version=1,
        timeout_s=5.0,
        input_schema=_obj(
            {"value": _OBJECT, "mapping": {"type": "object", "additionalProperties": _STR}},
            required=["value", "mapping"],
        ),
        output_schema=_obj({"value": _OBJECT}, required=["value"]),
        description="renames top-level fields by an old-name → new-name mapping",
    ),
    ActionDeclaration(
        id="transform.text",
        version=1,
        timeout_s=5.0,
        input_schema=_with(
            _obj(
                {
                    "op": {"enum": _TEXT_OPS},
                    "value": _ANY,
                    "chars": _STR,
                    "search": {"type": "string", "minLength": 1},
                    "replacement": _STR,
                    "count": {"type": "integer", "minimum": 0},
                    "separator": _STR,
                    "maxSplits": {"type": "integer", "minimum": 0},
                },
                required=["op", "value"],
            ),
            _when(
                ["upper", "lower", "trim", "replace", "split"],
                {"properties": {"value": _STR}},
            ),
            _when(
                "join",
                {
                    "properties": {
                        "value": {
                            "type": "array",
                            "items": {"type": ["string", "number", "boolean"]},
                        }
                    }
                },
            ),
            _when("replace", {"required": ["search", "replacement"]}),
            _when("split", {"properties": {"separator": {"minLength": 1}}}),
        ),
        output_schema=_obj({"value": {"type": ["string", "array"]}}, required=["value"]),
        description="upper, lower, trim, replace, split or join text",
    ),
    ActionDeclaration(
        id="transform.regex",
        version=1,
        timeout_s=5.0,
        input_schema=_with(
            _obj(
                {
                    "op": {"enum": _REGEX_OPS},
                    "pattern": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "value": {"type": "string", "maxLength": 100_000},
                    "flags": {"type": "string", "pattern": "^[ims]*$"},
                    "replacement": _STR,
                    "count": {"type": "integer", "minimum": 0},
                },
                required=["op", "pattern", "value"],
            ),
            _when("replace", {"required": ["replacement"]}),
        ),
        output_schema=_obj(
            {
                "matched": _BOOL,
                "match": {"type": ["string", "null"]},
                "index": {"type": ["integer", "null"]},
                "groups": {"type": "array"},
                "namedGroups": _OBJECT,
                "matches": {"type": "array", "items": _REGEX_MATCH},
                "value": _STR,
                "replacements": _INT,
            }
        ),
        description="match, extract or replace with a regular expression (time-bounded)",
    ),
    ActionDeclaration(
        id="transform.jsonParse",
        version=1,
        timeout_s=5.0,
        input_schema=_obj({"text": _STR}, required=["text"]),
        output_schema=_obj({"value": _ANY}, required=["value"]),
        description="parses JSON text",
    ),
    ActionDeclaration(
        id="transform.jsonStringify",
        version=1,
        timeout_s=5.0,
        input_schema=_obj({"value": _ANY, "pretty": _BOOL, "sortKeys": _BOOL}, required=["value"]),
        output_schema=_obj({"text": _STR}, required=["text"]),
        description="renders a value as JSON text",
    ),
    ActionDeclaration(
        id="transform.buildObject",
        version=1,
        timeout_s=5.0,
        input_schema=_obj(
            {
                "merge": {"type": "array", "items": _OBJECT},
                "entries": {
                    "type": "array",
                    "items": _obj({"key": _STR, "value": _ANY}, required=["key"]),
                },
                "omitNull": _BOOL,
            }
        ),
        output_schema=_obj({"value": _OBJECT}, required=["value"]),
        description="builds an object from objects to merge and key/value entries",
    ),
    ActionDeclaration(
        id="transform.buildArray",
        version=1,
        timeout_s=5.0,
        input_schema=_obj(
            {
                "items": {"type": "array"},
                "flatten": _BOOL,
                "omitNull": _BOOL,
                "unique": _BOOL,
            },
            required=["items"],
        ),
        output_schema=_obj({"value": {"type": "array"}}, required=["value"]),
        description="builds an array: optionally flattened one level, without nulls, unique",
    ),
)

BUILTIN_ACTIONS: Final[tuple[ActionDeclaration, ...]] = (
    ActionDeclaration(
        id="core.echo",
        version=1,
        input_schema=_obj({"value": _ANY}),
        output_schema=_obj({"value": _ANY}),
        description="returns its input value",
    ),
    ActionDeclaration(
        id="core.fail",
        version=1,
        input_schema=_obj({"message": _STR, "category": _STR, "code": _STR}, required=["message"]),
        output_schema=_obj({}),
        description="raises the given error (for exercising error paths)",
    ),
    ActionDeclaration(
        id="http.request",
        version=1,
        local=False,
        # the largest timeoutMs the input allows, plus a margin for reading the body
        timeout_s=305.0,
        input_schema=_obj(
            {
                "method": {
                    "type": "string",
                    "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                },
                "url": {"type": "string", "minLength": 1},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {
                    "type": "object",
                    "additionalProperties": {
                        "anyOf": [_SCALAR, {"type": "array", "items": _SCALAR}]
                    },
                },
                "json": _ANY,
                "body": _STR,
                "timeoutMs": {"type": "integer", "minimum": 1, "maximum": 300000},
            },
            required=["method", "url"],
        ),
        output_schema=_obj(
            {"status": _INT, "headers": {"type": "object"}, "json": _ANY, "text": _STR},
            required=["status", "headers"],
        ),
        description="an HTTP request; private and loopback targets refused unless allowed",
    ),
    ActionDeclaration(
        id="event.publish",
        version=1,
        input_schema=_obj(
            {
                "eventType": _EVENT_TYPE,
                "correlationKey": {"type": ["string", "null"]},
                "payload": {"type": "object"},
            },
            required=["eventType", "payload"],
        ),
        output_schema=_obj({"eventId": _STR}, required=["eventId"]),
        description="publishes an event for the run's tenant",
    ),
    ActionDeclaration(
        id="store.set",
        version=1,
        input_schema=_obj(
            {
                **_NS_KEY,
                "value": _ANY,
                "ttlSeconds": _TTL,
                "ifRevision": {"type": "integer", "minimum": 0},
            },
            required=["namespace", "key", "value"],
        ),
        output_schema=_obj(
            {"revision": _INT, "created": {"type": "boolean"}}, required=["revision", "created"]
        ),
        description="writes a value; ifRevision 0 creates only, N writes over revision N only",
    ),
    ActionDeclaration(
        id="store.get",
        version=1,
        input_schema=_obj(_NS_KEY, required=["namespace", "key"]),
        output_schema=_obj(
            {
                "found": {"type": "boolean"},
                "value": _ANY,
                "revision": {"type": ["integer", "null"]},
                "expiresAt": {"type": ["string", "null"]},
            },
            required=["found", "value", "revision", "expiresAt"],
        ),
        description="reads a value; expired keys are not found",
    ),
    ActionDeclaration(
        id="store.delete",
        version=1,
        input_schema=_obj(_NS_KEY, required=["namespace", "key"]),
        output_schema=_obj({"deleted": {"type": "boolean"}}, required=["deleted"]),
        description="deletes a key; deleted is false when it was absent or expired",
    ),
    ActionDeclaration(
        id="store.increment",
        version=1,
        input_schema=_obj(
            {**_NS_KEY, "by": {"type": "number"}, "ttlSeconds": _TTL},
            required=["namespace", "key"],
        ),
        output_schema=_obj(
            {"value": {"type": "number"}, "revision": _INT}, required=["value", "revision"]
        ),
        description="adds to a numeric value; a missing key starts from 0",
    ),
    ActionDeclaration(
        id="store.list",
        version=1,
        input_schema=_obj(
            {
                "namespace": _NS_KEY["namespace"],
                "prefix": _STR,
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "cursor": {"type": ["string", "null"]},
            },
            required=["namespace"],
        ),
        output_schema=_obj(
            {
                "items": {"type": "array", "items": _STORE_ITEM},
                "nextCursor": {"type": ["string", "null"]},
            },
            required=["items", "nextCursor"],
        ),
        description="lists live keys in key order, with an opaque cursor for the next page",
    ),
    *TRANSFORM_ACTIONS,
)


def declaration_of(spec: ActionSpec) -> ActionDeclaration:
    return ActionDeclaration(
        id=spec.id,
        version=spec.version,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        timeout_s=spec.timeout_s,
        local=spec.local,
        description=getattr(spec, "description", ""),
    )


def load_plugins() -> list[Any]:
    """Objects registered under the `stepwise.actions` entry-point group (one per action)."""
    loaded: list[Any] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        loaded.extend(obj if isinstance(obj, list | tuple) else [obj])
    return loaded


ActionCatalog = dict[tuple[str, int], ActionDeclaration]


def builtin_catalog(extra: Iterable[ActionDeclaration] = ()) -> ActionCatalog:
    return {(d.id, d.version): d for d in (*BUILTIN_ACTIONS, *extra)}


def full_catalog() -> ActionCatalog:
    """Built-ins plus every installed plugin's declaration."""
    return builtin_catalog(declaration_of(p) for p in load_plugins())


def called_actions(definition: dsl.Definition) -> list[tuple[str, int]]:
    """(actionId, version) of each `action.call` in `definition`, depth first, in order."""
    return [
        (step.config.action_id, step.config.version)
        for _path, step in dsl.walk_steps(definition.steps)
        if isinstance(step, dsl.ActionCall)
    ]


def action_facts(definition: dsl.Definition, catalog: ActionCatalog) -> dict[str, ActionFacts]:
    """What the interpreter needs to schedule each action `definition` calls that `catalog`
    declares, by "<actionId>@<version>" (an action it does not declare fails at its step)."""
    found: dict[str, ActionFacts] = {}
    for key in called_actions(definition):
        decl = catalog.get(key)
        if decl is not None:
            found[f"{decl.id}@{decl.version}"] = ActionFacts(
                local=decl.local, timeout_s=decl.timeout_s
            )
    return found
