"""`/api/workflow/events`: publish (202, or 200 with the routing result under `?wait=`), reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web
from stepwise_contract.enums import Role
from stepwise_contract.http import PublishEventRequest

from stepwise_api import api_schemas as s
from stepwise_api import dead_letters, event_intake, event_store
from stepwise_api.auth import Principal
from stepwise_api.bodies import typed_body
from stepwise_api.deps import deps_of
from stepwise_api.params import (
    limit,
    make_time_id_cursor,
    query_datetime,
    query_int,
    time_id_cursor,
)
from stepwise_api.responses import json_response
from stepwise_api.route_table import Param, Reply, Route
from stepwise_api.settings import Settings


async def publish_event(request: web.Request, principal: Principal) -> web.StreamResponse:
    deps = deps_of(request)
    wait = query_int(request, "wait", 0, minimum=0, maximum=deps.settings.event_wait_max_s)
    body = await typed_body(request, PublishEventRequest)
    envelope = event_intake.envelope_for(principal.tenant, body)
    await event_intake.publish(deps.js, envelope)
    if wait:
        result = await event_intake.wait_for_routing(
            deps.pool, principal.tenant, envelope.event_id, wait
        )
        if result is not None:
            return json_response(result)
        return json_response(
            {
                "eventId": envelope.event_id,
                "status": "accepted",
                "warning": f"routing did not finish within {wait} s; the event is queued",
            },
            status=202,
        )
    return json_response({"eventId": envelope.event_id, "status": "accepted"}, status=202)


def _filter(request: web.Request, *, with_status: bool = True) -> event_store.EventFilter:
    return event_store.EventFilter(
        event_name=request.query.get("eventName") or None,
        correlation_key=request.query.get("correlationKey") or None,
        status=(request.query.get("status") or None) if with_status else None,
        created_from=query_datetime(request, "from"),
        created_to=query_datetime(request, "to"),
    )


async def list_events(request: web.Request, principal: Principal) -> web.StreamResponse:
    size = limit(request)
    events = await event_store.list_events(
        deps_of(request).pool,
        principal.tenant,
        _filter(request),
        time_id_cursor(request, uuid_id=False),
        size,
        principal.redactor,
    )
    last = events[-1] if len(events) == size else None
    next_cursor = make_time_id_cursor(last["created_at"], last["event_id"]) if last else None
    return json_response({"events": events, "nextCursor": next_cursor})


async def event_summary(request: web.Request, principal: Principal) -> web.StreamResponse:
    return json_response(
        await event_store.summary(
            deps_of(request).pool, principal.tenant, _filter(request, with_status=False)
        )
    )


async def get_event(request: web.Request, principal: Principal) -> web.StreamResponse:
    return json_response(
        await event_store.get_event(
            deps_of(request).pool,
            principal.tenant,
            request.match_info["eventId"],
            principal.redactor,
        )
    )


DEAD_LETTER_WINDOW = timedelta(days=7)


async def list_dead_letters(request: web.Request, principal: Principal) -> web.StreamResponse:
    since = query_datetime(request, "from") or datetime.now(UTC) - DEAD_LETTER_WINDOW
    letters = await dead_letters.read(
        deps_of(request).js,
        principal.tenant,
        since,
        limit(request, maximum=200),
        principal.redactor,
    )
    return json_response({"deadLetters": letters})


FILTERS = (
    Param("eventName", {"type": "string"}),
    Param("correlationKey", {"type": "string"}),
    Param("from", {"type": "string", "format": "date-time"}),
    Param("to", {"type": "string", "format": "date-time"}),
)


def routes(settings: Settings) -> list[Route]:
    return [_publish_route(settings.event_wait_max_s), *READ_ROUTES]


def _publish_route(wait_max_s: int) -> Route:
    return Route(
        "POST",
        "/api/workflow/events",
        publish_event,
        Role.MANAGE,
        "Publish an event to NATS JetStream (202); with ?wait=N wait for the routing result",
        "events",
        write=True,
        body=PublishEventRequest,
        query=(Param("wait", {"type": "integer", "minimum": 0, "maximum": wait_max_s}, "seconds"),),
        replies={
            200: Reply("routed within the wait", s.EVENT_ROUTED),
            202: Reply("accepted (published, not yet routed)", s.EVENT_ACCEPTED),
        },
    )


READ_ROUTES = [
    Route(
        "GET",
        "/api/workflow/events",
        list_events,
        Role.READ,
        "Recorded events with their routing status (payload redacted)",
        "events",
        query=(
            *FILTERS,
            Param("status", {"enum": list(event_store.STATUSES)}),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 500}),
            Param("cursor", {"type": "string"}),
        ),
        replies={200: Reply("a page of events", s.page("events", s.EVENT_ROW))},
    ),
    # Registered before `{eventId}` so `summary` and `dead-letters` are never taken for an id.
    Route(
        "GET",
        "/api/workflow/events/dead-letters",
        list_dead_letters,
        Role.READ,
        "The tenant's dead-lettered messages, newest first (reason, detail, JSON body redacted;"
        " from defaults to 7 days ago; at most 2000 messages are scanned)",
        "events",
        query=(
            Param("from", {"type": "string", "format": "date-time"}, "stored at or after"),
            Param("limit", {"type": "integer", "minimum": 1, "maximum": 200}),
        ),
        replies={200: Reply("the dead letters", s.DEAD_LETTERS)},
    ),
    Route(
        "GET",
        "/api/workflow/events/summary",
        event_summary,
        Role.READ,
        "Counts of events by routing status",
        "events",
        query=FILTERS,
        replies={200: Reply("the counts", s.EVENT_SUMMARY)},
    ),
    Route(
        "GET",
        "/api/workflow/events/{eventId}",
        get_event,
        Role.READ,
        "One recorded event (payload redacted)",
        "events",
        replies={200: Reply("the event", s.EVENT_ROW)},
    ),
]
