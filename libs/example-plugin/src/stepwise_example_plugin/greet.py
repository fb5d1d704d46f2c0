"""`example.greet@1`: `{name, greeting?}` → `{message, tenantId}`.

An entry point in the `stepwise.actions` group loads an object (or a list of them) carrying the
declaration attributes and an async `handler(input, ctx)`. The worker validates the input against
`input_schema` before calling the handler and the output against `output_schema` after.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class CallContext(Protocol):
    """The part of the worker's action context this plugin reads."""

    tenant_id: str
    run_id: str


Handler = Callable[[dict[str, Any], Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class PluginAction:
    id: str
    version: int
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    handler: Handler
    timeout_s: float = 10.0
    # in-process and fast: a local activity; a plugin doing I/O should say False
    local: bool = True
    description: str = field(default="")


async def greet(payload: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    greeting = payload.get("greeting", "Hello")
    return {"message": f"{greeting}, {payload['name']}!", "tenantId": ctx.tenant_id}


GREET = PluginAction(
    id="example.greet",
    version=1,
    input_schema={
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "greeting": {"type": "string"},
        },
        "required": ["name"],
        "additionalProperties": False,
    },
    output_schema={
        "type": "object",
        "properties": {"message": {"type": "string"}, "tenantId": {"type": "string"}},
        "required": ["message", "tenantId"],
        "additionalProperties": False,
    },
    handler=greet,
    description="greets someone by name (an example plugin action)",
)
