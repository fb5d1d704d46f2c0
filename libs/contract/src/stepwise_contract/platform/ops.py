"""Process plumbing shared by the services: the ops HTTP server and the SIGTERM-aware main loop.

`/healthz` answers 200 while the process lives; `/readyz` runs the service's readiness checks (each
a coroutine that raises when its dependency is unreachable) and answers 503 naming what failed;
`/metrics` is the Prometheus exposition of the default registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stepwise_contract.platform.settings import SettingsError

ReadinessCheck = Callable[[], Awaitable[object]]

_log = structlog.get_logger("stepwise.ops")


async def check_all(checks: Mapping[str, ReadinessCheck], limit_s: float = 3.0) -> dict[str, str]:
    """Run every check; map name → "ok" or the error text."""

    async def one(check: ReadinessCheck) -> str:
        try:
            await asyncio.wait_for(check(), limit_s)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok"

    results = await asyncio.gather(*(one(c) for c in checks.values()))
    return dict(zip(checks, results, strict=True))


def add_ops_routes(app: web.Application, checks: Mapping[str, ReadinessCheck]) -> None:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_request: web.Request) -> web.Response:
        results = await check_all(checks)
        ready = all(v == "ok" for v in results.values())
        return web.json_response(
            {"status": "ready" if ready else "not_ready", "checks": results},
            status=200 if ready else 503,
        )

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


@contextlib.asynccontextmanager
async def ops_server(
    host: str, port: int, checks: Mapping[str, ReadinessCheck]
) -> AsyncIterator[web.AppRunner]:
    """Serve /healthz, /readyz and /metrics for a service that has no HTTP API of its own."""
    app = web.Application()
    add_ops_routes(app, checks)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()


def stop_event_on_signals() -> asyncio.Event:
    """An event set on SIGTERM or SIGINT: the service stops taking work and shuts down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


def run_service(
    name: str,
    load_settings: Callable[[Mapping[str, str]], Any],
    serve: Callable[[Any], Coroutine[Any, Any, None]],
    environ: Mapping[str, str],
) -> int:
    """Parse settings once (bad value → message and exit 2), then run `serve` until it returns.

    `STEPWISE_EVENT_LOOP` (`asyncio`, the default, or `uvloop` where installed: the API and the
    router declare it) picks the event loop. In the launch profile asyncio's selector and socket
    writes took about 45 % of the API's samples, which uvloop does in C; it stays opt-in until a
    quiet A/B shows a gain (docs/performance.md).
    """
    try:
        settings = load_settings(environ)
        factory = event_loop_factory(environ)
    except SettingsError as exc:
        print(f"{name}: configuration error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(settings))
    return 0


def event_loop_factory(
    environ: Mapping[str, str],
) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The loop factory `STEPWISE_EVENT_LOOP` names (None: asyncio's default loop)."""
    choice = environ.get("STEPWISE_EVENT_LOOP", "").strip().lower() or "asyncio"
    if choice == "asyncio":
        return None
    if choice != "uvloop":
        raise SettingsError(f"STEPWISE_EVENT_LOOP must be 'uvloop' or 'asyncio', not {choice!r}")
    try:
        # optional: only the services that declare it (api, router) install it
        import uvloop
    except ImportError as exc:
        raise SettingsError("STEPWISE_EVENT_LOOP=uvloop but uvloop is not installed") from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
