"""The resources a request handler uses, opened once per application (see `app.py`)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiohttp import web
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from temporalio.client import Client

from stepwise_api.auth import Principal
from stepwise_api.key_cache import KeyCache
from stepwise_api.launcher import Launcher
from stepwise_api.settings import Settings


@dataclass(frozen=True)
class Deps:
    settings: Settings
    pool: asyncpg.Pool
    temporal: Client
    nats: NATS
    js: JetStreamContext
    launcher: Launcher
    # verified API keys, reused for `settings.auth_cache_s` seconds
    key_cache: KeyCache[Principal]


DEPS = web.AppKey("deps", Deps)


def deps_of(request: web.Request) -> Deps:
    return request.app[DEPS]
