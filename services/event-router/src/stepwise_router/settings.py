"""Typed settings of stepwise-router, parsed once at the entry point (SPEC §12)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from stepwise_contract.settings import CommonSettings, env_port, env_str


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    host: str
    port: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str(environ, "STEPWISE_BIND_HOST", "0.0.0.0"),
            port=env_port(environ, "STEPWISE_ROUTER_PORT", 8082),
        )
