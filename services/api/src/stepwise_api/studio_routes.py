"""Run Studio: the operator's page, served as static files at `/studio/`.

The files carry no data and need no key: the page asks the operator for an API key and calls the
JSON API with `Authorization: Bearer`. Only the files named in `ASSETS` are served (no directory
walking), with a strict Content-Security-Policy so that nothing but this origin's own script runs.
These routes are not part of the JSON API and therefore not in its OpenAPI document; they are
registered under route names starting with `STUDIO_ROUTE_PREFIX` so a check can tell them apart.
"""

from __future__ import annotations

from importlib import resources

from aiohttp import web

STUDIO_PATH = "/studio"
STUDIO_ROUTE_PREFIX = "studio"
ASSETS = {
    "index.html": "text/html",
    "studio.js": "text/javascript",
    "forms.js": "text/javascript",
    "tasks.js": "text/javascript",
    "workflows.js": "text/javascript",
    "events.js": "text/javascript",
    "studio.css": "text/css",
}
_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self';"
        " img-src 'self' data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


def _load_assets() -> dict[str, bytes]:
    folder = resources.files("stepwise_api") / "studio"
    return {name: (folder / name).read_bytes() for name in ASSETS}


def add_studio_routes(app: web.Application) -> None:
    """Register `/` and `/studio` (redirects), `/studio/` (index.html) and `/studio/{file}`."""
    # Read once: the files are small and the package is immutable while the process runs.
    assets = _load_assets()

    def respond(name: str) -> web.Response:
        return web.Response(
            body=assets[name], content_type=ASSETS[name], charset="utf-8", headers=_HEADERS
        )

    async def studio_redirect(_request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(STUDIO_PATH + "/")

    async def root_redirect(_request: web.Request) -> web.StreamResponse:
        # a person opening the API's URL in a browser lands on the page meant for people;
        # temporary, so a later landing page can take `/` over without stale browser caches
        raise web.HTTPFound(STUDIO_PATH + "/")

    async def studio_index(_request: web.Request) -> web.StreamResponse:
        return respond("index.html")

    async def studio_asset(request: web.Request) -> web.StreamResponse:
        name = request.match_info["file"]
        if name not in assets:
            raise web.HTTPNotFound()
        return respond(name)

    router = app.router
    router.add_get("/", root_redirect, name=f"{STUDIO_ROUTE_PREFIX}-root")
    router.add_get(STUDIO_PATH, studio_redirect, name=f"{STUDIO_ROUTE_PREFIX}-redirect")
    router.add_get(STUDIO_PATH + "/", studio_index, name=f"{STUDIO_ROUTE_PREFIX}-index")
    router.add_get(STUDIO_PATH + "/{file}", studio_asset, name=f"{STUDIO_ROUTE_PREFIX}-asset")
