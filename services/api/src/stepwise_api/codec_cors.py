"""CORS for the codec routes only: Temporal's Web UI calls them from the browser.

Origins are a setting (`STEPWISE_CODEC_CORS_ORIGINS`, comma-separated; none by default). A
preflight from an allowed origin is answered here, before authentication (browsers send no
credentials with it); every answer to an allowed origin — errors included, so the UI can show
them — carries the allow headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection

from aiohttp import web

from stepwise_api.routes.codec import CODEC_PREFIX

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_ALLOW_HEADERS = "Authorization, Content-Type, X-Namespace, x-api-key"


def codec_cors_middleware(origins: Collection[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    allowed = frozenset(o.rstrip("/") for o in origins)

    @web.middleware
    async def codec_cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin", "")
        if not request.path.startswith(CODEC_PREFIX + "/") or origin not in allowed:
            return await handler(request)
        headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Credentials": "true",
            "Vary": "Origin",
        }
        if request.method == "OPTIONS":
            headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
            headers["Access-Control-Allow-Headers"] = _ALLOW_HEADERS
            headers["Access-Control-Max-Age"] = "600"
            return web.Response(status=204, headers=headers)
        response = await handler(request)
        response.headers.update(headers)
        return response

    return codec_cors
