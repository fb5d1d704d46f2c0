"""The route table: one `Route` per operation, used both to register handlers and to generate
the OpenAPI document (`openapi.py`), so the two cannot drift.

Registering a route wraps its handler with authentication and the route's role check; unknown
routes therefore answer 404 before any key is looked at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from stepwise_contract.enums import Role

from stepwise_api.auth import Principal, authenticate, authorize
from stepwise_api.deps import deps_of

Handler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
JSONSchema = Mapping[str, Any]


@dataclass(frozen=True)
class Param:
    """A query parameter (path parameters are read from the path template)."""

    name: str
    schema: JSONSchema
    description: str = ""
    required: bool = False


@dataclass(frozen=True)
class Reply:
    """A documented answer: JSON schema of the body (None = no JSON body) and its media type."""

    description: str
    schema: JSONSchema | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    role: Role
    summary: str
    tag: str
    # a write is refused for a suspended tenant (403 TENANT_SUSPENDED)
    write: bool = False
    # msgspec type of the JSON body, or a JSON schema for a free-form body; None = no body
    body: Any = None
    body_required: bool = True
    query: Sequence[Param] = ()
    replies: Mapping[int, Reply] = field(default_factory=dict)
    # schema of path parameters by name (default: string)
    path_params: Mapping[str, JSONSchema] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


# path parameters that name a run or an event → the log context key they are bound as
_PATH_IDS = {"runId": "run_id", "eventId": "event_id"}


def _guarded(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        structlog.contextvars.bind_contextvars(
            **{key: request.match_info[name] for name, key in _PATH_IDS.items()
               if name in request.match_info}
        )  # fmt: skip
        deps = deps_of(request)
        principal = await authenticate(deps.pool, deps.key_cache, request)
        # Each request runs in its own task: these identifiers end up on its request log line.
        structlog.contextvars.bind_contextvars(
            tenant=str(principal.tenant), key_id=str(principal.key_id)
        )
        authorize(principal, route.role, write=route.write)
        return await route.handler(request, principal)

    handle.__name__ = route.operation_id
    return handle


def add_routes(app: web.Application, routes: Sequence[Route]) -> None:
    for route in routes:
        app.router.add_route(route.method, route.path, _guarded(route))
