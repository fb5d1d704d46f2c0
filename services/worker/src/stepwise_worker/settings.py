"""Typed settings of stepwise-worker, parsed once at the entry point (SPEC §12).

| variable | default | meaning |
|---|---|---|
| `STEPWISE_WORKER_PORT` | 8081 | ops server (/healthz, /readyz, /metrics) |
| `STEPWISE_SECRET_KEY` | (empty) | key of the tenant secrets; `$secret` refs fail without it |
| `STEPWISE_HTTP_ALLOW_PRIVATE` | false | let `http.request` reach private and loopback addresses |
| `STEPWISE_WORKER_MAX_VALUE_BYTES` | 10 MiB | largest action output or run input |
| `STEPWISE_EVENT_LOOKBACK_S` | 300 | recent-event buffer window checked by `event.wait` |
| `STEPWISE_WORKER_MAX_CONCURRENT_ACTIVITIES` | 100 | regular activities at once |
| `STEPWISE_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES` | 200 | local activities at once |
| `STEPWISE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS` | 8 | workflow tasks at once (CPU-bound) |
| `STEPWISE_WORKER_EXPRESSION_PROCESSES` | 2 | processes for expressions over the inline budget |
| `STEPWISE_WORKER_EXPRESSION_NICENESS` | 10 | their CPU priority below the worker's (nice, 0-19) |
| `STEPWISE_WORKER_MAX_CACHED_WORKFLOWS` | 10000 | runs kept in memory between activations (below) |
| `STEPWISE_WORKER_DB_POOL_SIZE` | 20 | Postgres connections |
| `STEPWISE_WORKER_SHUTDOWN_GRACE_S` | 30 | on SIGTERM, how long running activities may finish |

`STEPWISE_WORKER_MAX_CACHED_WORKFLOWS` is Temporal's sticky cache: a cached run resumes from memory
with one activation; an evicted one is rebuilt by replaying its whole history first (every step
since it started), which costs CPU and a history fetch on each resume. Size it to the runs one
replica expects to have waiting at once; the price is memory per cached run (docs/performance.md
has the measured figure). 0 turns the cache off (every activation replays).
"""

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
    secret_key: str = ""
    http_allow_private: bool = False
    max_payload_bytes: int = 10 * 1024 * 1024
    event_lookback_s: float = 300.0
    max_concurrent_activities: int = 100
    max_concurrent_local_activities: int = 200
    max_concurrent_workflow_tasks: int = 8
    expression_processes: int = 2
    expression_niceness: int = 10
    max_cached_workflows: int = 10_000
    db_pool_size: int = 20
    shutdown_grace_s: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str(environ, "STEPWISE_BIND_HOST", "0.0.0.0"),
            port=env_port(environ, "STEPWISE_WORKER_PORT", 8081),
            secret_key=env_str(environ, "STEPWISE_SECRET_KEY", ""),
            http_allow_private=env_bool(environ, "STEPWISE_HTTP_ALLOW_PRIVATE", False),
            max_payload_bytes=env_int(
                environ, "STEPWISE_WORKER_MAX_VALUE_BYTES", 10 * 1024 * 1024, minimum=1024
            ),
            event_lookback_s=env_float(environ, "STEPWISE_EVENT_LOOKBACK_S", 300.0, minimum=0),
            max_concurrent_activities=env_int(
                environ, "STEPWISE_WORKER_MAX_CONCURRENT_ACTIVITIES", 100, minimum=1
            ),
            max_concurrent_local_activities=env_int(
                environ, "STEPWISE_WORKER_MAX_CONCURRENT_LOCAL_ACTIVITIES", 200, minimum=1
            ),
            max_concurrent_workflow_tasks=env_int(
                environ, "STEPWISE_WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", 8, minimum=2
            ),
            expression_processes=env_int(
                environ, "STEPWISE_WORKER_EXPRESSION_PROCESSES", 2, minimum=1
            ),
            expression_niceness=env_int(
                environ, "STEPWISE_WORKER_EXPRESSION_NICENESS", 10, minimum=0, maximum=19
            ),
            max_cached_workflows=env_int(
                environ, "STEPWISE_WORKER_MAX_CACHED_WORKFLOWS", 10_000, minimum=0
            ),
            db_pool_size=env_int(environ, "STEPWISE_WORKER_DB_POOL_SIZE", 20, minimum=2),
            shutdown_grace_s=env_float(
                environ, "STEPWISE_WORKER_SHUTDOWN_GRACE_S", 30.0, minimum=0
            ),
        )
