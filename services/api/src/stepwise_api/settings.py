"""Typed settings of stepwise-api, parsed once at the entry point (SPEC §12)."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from stepwise_contract.platform.settings import (
    CommonSettings,
    env_bool,
    env_float,
    env_int,
    env_port,
    env_str,
)


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    host: str
    port: int
    # request bodies larger than this answer 413
    max_payload_bytes: int = 512 * 1024
    # a RUNNING run with no step after this long gets the RUN_QUEUED_NO_PROGRESS warning
    stuck_run_threshold_s: float = 60.0
    # the longest `POST /api/workflow/events?wait=N` may wait for the router
    event_wait_max_s: int = 30
    # the tenant-secret key; the API never decrypts (only the worker does), it is parsed here so
    # every service reads one configuration surface
    secret_key: str = ""
    # browser origins allowed to call the codec routes (Temporal's Web UI), e.g.
    # http://localhost:8233
    codec_cors_origins: tuple[str, ...] = ()
    # a verified API key is reused this long without a lookup: revocation, suspension and
    # redaction changes take effect within it (0 = look up every request)
    auth_cache_s: float = 5.0
    # TEST-ONLY fault hook: exit(137) right after a launch inserted its run row, before the Temporal
    # start, so the end-to-end suite can prove the sweeper's launch reconciliation. Never set it in
    # production.
    fault_crash_after_run_row: bool = False
    # Postgres connections per API process (`STEPWISE_API_DB_POOL_SIZE`)
    db_pool_size: int = 20

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str(environ, "STEPWISE_BIND_HOST", "0.0.0.0"),
            port=env_port(environ, "STEPWISE_API_PORT", 8080),
            max_payload_bytes=env_int(
                environ, "STEPWISE_MAX_PAYLOAD_BYTES", 512 * 1024, minimum=1024
            ),
            stuck_run_threshold_s=env_float(
                environ, "STEPWISE_STUCK_RUN_THRESHOLD_S", 60.0, minimum=0.0
            ),
            event_wait_max_s=min(30, env_int(environ, "STEPWISE_EVENT_WAIT_MAX_S", 30, minimum=0)),
            secret_key=environ.get("STEPWISE_SECRET_KEY", ""),
            codec_cors_origins=tuple(
                o.strip()
                for o in environ.get("STEPWISE_CODEC_CORS_ORIGINS", "").split(",")
                if o.strip()
            ),
            auth_cache_s=min(
                60.0, env_float(environ, "STEPWISE_API_AUTH_CACHE_S", 5.0, minimum=0.0)
            ),
            fault_crash_after_run_row=env_bool(
                environ, "STEPWISE_FAULT_CRASH_AFTER_RUN_ROW", False
            ),
            db_pool_size=env_int(environ, "STEPWISE_API_DB_POOL_SIZE", 20, minimum=2),
        )
