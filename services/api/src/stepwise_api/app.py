"""The aiohttp application: resources in one cleanup context, middlewares, the route table, the
OpenAPI document and the ops routes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import msgspec
from aiohttp import web
from stepwise_contract.actions import full_catalog
from stepwise_contract.platform.db import create_pool
from stepwise_contract.platform.http_tracing import tracing_middlewares
from stepwise_contract.platform.nats_connection import connect_nats
from stepwise_contract.platform.nats_tracing import traced_jetstream
from stepwise_contract.platform.ops import ReadinessCheck, add_ops_routes
from stepwise_contract.platform.readiness import nats_check, postgres_check, temporal_check
from stepwise_contract.platform.service_start import connect_service_temporal
from stepwise_contract.platform.start_recorder import StartRecorder
from stepwise_contract.platform.tracing import TracerProvider, temporal_interceptors

from stepwise_api.codec_cors import codec_cors_middleware
from stepwise_api.deps import DEPS, Deps
from stepwise_api.errors import problem_middleware
from stepwise_api.key_cache import KeyCache
from stepwise_api.launcher import Launcher
from stepwise_api.metrics import metrics_middleware
from stepwise_api.openapi import OPENAPI_PATH, build_document
from stepwise_api.route_table import add_routes
from stepwise_api.routes import api_routes
from stepwise_api.settings import Settings
from stepwise_api.studio_routes import add_studio_routes


def _resources(
    settings: Settings, tracer_provider: TracerProvider | None = None
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def resources(app: web.Application) -> AsyncIterator[None]:
        common = settings.common
        pool = await create_pool(common.database_url, max_size=settings.db_pool_size)
        try:
            # Lazy: the API starts (and /readyz says why it is not ready) while Temporal is down.
            client = await connect_service_temporal(
                common,
                pool,
                interceptors=temporal_interceptors(tracer_provider),
                lazy=True,
            )
            nc = await connect_nats(common.nats, name="stepwise-api", max_reconnect_attempts=-1)
            try:
                async with StartRecorder(pool).running() as recorder:
                    app[DEPS] = Deps(
                        settings=settings,
                        pool=pool,
                        temporal=client,
                        nats=nc,
                        js=traced_jetstream(nc, tracer_provider),
                        launcher=Launcher(
                            pool,
                            client,
                            catalog=full_catalog(),
                            recorder=recorder,
                            crash_after_row=settings.fault_crash_after_run_row,
                        ),
                        key_cache=KeyCache(settings.auth_cache_s),
                    )
                    yield
            finally:
                await nc.drain()
        finally:
            await pool.close()

    return resources


def _checks(app: web.Application) -> dict[str, ReadinessCheck]:
    async def postgres() -> None:
        await postgres_check(app[DEPS].pool)()

    async def temporal() -> None:
        await temporal_check(app[DEPS].temporal)()

    async def nats_ready() -> None:
        await nats_check(app[DEPS].nats)()

    return {"postgres": postgres, "temporal": temporal, "nats": nats_ready}


def create_app(
    settings: Settings, tracer_provider: TracerProvider | None = None
) -> web.Application:
    """`tracer_provider` (tracing on): a server span per request, its context carried into the
    Temporal calls and the NATS publishes the request makes."""
    app = web.Application(
        client_max_size=settings.max_payload_bytes,
        middlewares=[
            codec_cors_middleware(settings.codec_cors_origins),
            *tracing_middlewares(tracer_provider),
            metrics_middleware,
            problem_middleware,
        ],
    )
    app.cleanup_ctx.append(_resources(settings, tracer_provider))
    routes = api_routes(settings)
    add_routes(app, routes)
    document = msgspec.json.encode(build_document(routes))

    async def openapi(_request: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get(OPENAPI_PATH, openapi)
    add_ops_routes(app, _checks(app))
    add_studio_routes(app)  # Run Studio static page (studio_routes.py; not in the OpenAPI doc)
    return app
