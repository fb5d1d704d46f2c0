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
_NS_KEY: Final = {
    "namespace": {"type": "string", "minLength": 1},
    "key": {"type": "string", "minLength": 1},
}

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
        timeout_s=60.0,
        input_schema=_obj(
            {
                "method": {
                    "type": "string",
                    "enum": ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"],
                },
                "url": {"type": "string", "minLength": 1},
                "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                "query": {"type": "object"},
                "json": _ANY,
                "body": _STR,
                "timeoutMs": {"type": "integer", "minimum": 1, "maximum": 300000},
            },
            required=["method", "url"],
        ),
        output_schema=_obj(
            {"status": _INT, "headers": {"type": "object"}, "json": _ANY, "text": _STR}
        ),
        description="an HTTP request; private and loopback targets refused unless allowed",
    ),
    ActionDeclaration(
        id="event.publish",
        version=1,
        input_schema=_obj(
            {
                "eventType": {"type": "string", "minLength": 1},
                "correlationKey": {"type": ["string", "null"]},
                "payload": {"type": "object"},
            },
            required=["eventType", "payload"],
        ),
        output_schema=_obj({"eventId": _STR}),
        description="publishes an event for the run's tenant",
    ),
    ActionDeclaration(
        id="store.set",
        version=1,
        input_schema=_obj(
            {
                **_NS_KEY,
                "value": _ANY,
                "ttlSeconds": {"type": "integer", "minimum": 1},
                "ifRevision": {"type": "integer", "minimum": 0},
            },
            required=["namespace", "key", "value"],
        ),
        output_schema=_obj({"revision": _INT, "created": {"type": "boolean"}}),
    ),
    ActionDeclaration(
        id="store.get",
        version=1,
        input_schema=_obj(_NS_KEY, required=["namespace", "key"]),
        output_schema=_obj(
            {"found": {"type": "boolean"}, "value": _ANY, "revision": _ANY, "expiresAt": _ANY}
        ),
    ),
    ActionDeclaration(
        id="store.delete",
        version=1,
        input_schema=_obj(_NS_KEY, required=["namespace", "key"]),
        output_schema=_obj({"deleted": {"type": "boolean"}}),
    ),
    ActionDeclaration(
        id="store.increment",
        version=1,
        input_schema=_obj(
            {**_NS_KEY, "by": {"type": "number"}, "ttlSeconds": {"type": "integer", "minimum": 1}},
            required=["namespace", "key"],
        ),
        output_schema=_obj({"value": {"type": "number"}, "revision": _INT}),
    ),
    ActionDeclaration(
        id="store.list",
        version=1,
        input_schema=_obj(
            {
                "namespace": {"type": "string", "minLength": 1},
                "prefix": _STR,
                "limit": {"type": "integer", "minimum": 1, "maximum": 1000},
                "cursor": {"type": ["string", "null"]},
            },
            required=["namespace"],
        ),
        output_schema=_obj({"items": {"type": "array"}, "nextCursor": _ANY}),
    ),
)


def declaration_of(spec: ActionSpec) -> ActionDeclaration:
    return ActionDeclaration(
        id=spec.id,
        version=spec.version,
        input_schema=spec.input_schema,
        output_schema=spec.output_schema,
        timeout_s=spec.timeout_s,
        local=spec.local,
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
