"""Every API route, in registration order (a fixed path before a `{param}` sibling)."""

from __future__ import annotations

from stepwise_api.route_table import Route
from stepwise_api.routes import (
    codec,
    controls,
    definitions,
    events,
    run_reads,
    runs,
    schemas,
    tasks,
)
from stepwise_api.settings import Settings


def api_routes(settings: Settings) -> list[Route]:
    return [
        *schemas.ROUTES,
        *definitions.ROUTES,
        *runs.ROUTES,
        *run_reads.ROUTES,
        *controls.ROUTES,
        *events.routes(settings),
        *tasks.ROUTES,
        *codec.ROUTES,
    ]
