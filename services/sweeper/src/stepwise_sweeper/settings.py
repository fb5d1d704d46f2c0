"""Typed settings of stepwise-sweeper, parsed once at the entry point (SPEC §10, §12).

Intervals (seconds; 0 disables a job):
`STEPWISE_SWEEP_EXPIRY_INTERVAL_S` (60), `STEPWISE_SWEEP_RECONCILE_INTERVAL_S` (15),
`STEPWISE_SWEEP_QUOTA_INTERVAL_S` (300), `STEPWISE_SWEEP_BUFFER_INTERVAL_S` (60),
`STEPWISE_SWEEP_RETENTION_INTERVAL_S` (86400), `STEPWISE_SWEEP_TASK_FAILURES_INTERVAL_S` (5),
`STEPWISE_SWEEP_CANCEL_ENFORCEMENT_INTERVAL_S` (10).
Batches: `STEPWISE_SWEEP_EXPIRY_BATCH` (1000), `STEPWISE_SWEEP_BUFFER_BATCH` (1000),
`STEPWISE_SWEEP_QUOTA_BATCH` (100), `STEPWISE_SWEEP_RECONCILE_BATCH` (200),
`STEPWISE_SWEEP_RETENTION_BATCH` (500).
Launch reconciliation: `STEPWISE_RECONCILE_GRACE_S` (30), `STEPWISE_RECONCILE_DEADLINE_S` (600),
`STEPWISE_SWEEP_TEMPORAL_TIMEOUT_S` (10, per Temporal call).
Cancel enforcement: `STEPWISE_CANCEL_GRACE_S` (30) — how long a canceled run's Temporal workflow
may take to close before the sweeper terminates it.
Event buffer: `STEPWISE_EVENT_LOOKBACK_S` (300, shared with the worker and the router).
Shutdown: `STEPWISE_SWEEP_SHUTDOWN_S` (20) — how long SIGTERM waits for passes to finish their
current batch before cancelling them (a cancelled batch's transaction rolls back).
Postgres: `STEPWISE_SWEEPER_DB_POOL_SIZE` (10) connections per sweeper process.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from stepwise_contract.platform.settings import (
    CommonSettings,
    SettingsError,
    env_float,
    env_int,
    env_port,
    env_str,
)

from stepwise_sweeper.jobs.buffer import BufferConfig
from stepwise_sweeper.jobs.cancel_enforcement import CancelEnforcementConfig
from stepwise_sweeper.jobs.expiry import ExpiryConfig
from stepwise_sweeper.jobs.quota import QuotaConfig
from stepwise_sweeper.jobs.reconcile import ReconcileConfig
from stepwise_sweeper.jobs.retention import RetentionConfig
from stepwise_sweeper.jobs.task_failures import TaskFailuresConfig


class Intervals(msgspec.Struct, frozen=True, kw_only=True):
    """Seconds between the starts of two passes of each job; 0 = the job does not run."""

    expiry: float = 60.0
    reconcile: float = 15.0
    quota: float = 300.0
    buffer: float = 60.0
    retention: float = 86400.0
    task_failures: float = 5.0
    cancel_enforcement: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Intervals:
        defaults = cls()
        return cls(
            **{
                job: env_float(
                    environ, f"STEPWISE_SWEEP_{job.upper()}_INTERVAL_S", default, minimum=0
                )
                for job, default in msgspec.structs.asdict(defaults).items()
            }
        )


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    common: CommonSettings
    host: str
    port: int
    intervals: Intervals
    expiry: ExpiryConfig
    reconcile: ReconcileConfig
    quota: QuotaConfig
    buffer: BufferConfig
    retention: RetentionConfig
    task_failures: TaskFailuresConfig
    cancel_enforcement: CancelEnforcementConfig
    shutdown_timeout_s: float
    db_pool_size: int = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        temporal_timeout = env_float(
            environ, "STEPWISE_SWEEP_TEMPORAL_TIMEOUT_S", 10.0, minimum=0.1
        )
        grace = env_float(environ, "STEPWISE_RECONCILE_GRACE_S", 30.0, minimum=0)
        deadline = env_float(environ, "STEPWISE_RECONCILE_DEADLINE_S", 600.0, minimum=0)
        if deadline < grace:
            raise SettingsError(
                f"STEPWISE_RECONCILE_DEADLINE_S={deadline:g} must be >= "
                f"STEPWISE_RECONCILE_GRACE_S={grace:g}"
            )
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str(environ, "STEPWISE_BIND_HOST", "0.0.0.0"),
            port=env_port(environ, "STEPWISE_SWEEPER_PORT", 8083),
            intervals=Intervals.from_env(environ),
            expiry=ExpiryConfig(
                batch_size=env_int(environ, "STEPWISE_SWEEP_EXPIRY_BATCH", 1000, minimum=1)
            ),
            reconcile=ReconcileConfig(
                grace_s=grace,
                deadline_s=deadline,
                batch_size=env_int(environ, "STEPWISE_SWEEP_RECONCILE_BATCH", 200, minimum=1),
                start_timeout_s=temporal_timeout,
            ),
            quota=QuotaConfig(
                batch_size=env_int(environ, "STEPWISE_SWEEP_QUOTA_BATCH", 100, minimum=1),
                signal_timeout_s=temporal_timeout,
            ),
            buffer=BufferConfig(
                lookback_s=env_float(environ, "STEPWISE_EVENT_LOOKBACK_S", 300.0, minimum=0),
                batch_size=env_int(environ, "STEPWISE_SWEEP_BUFFER_BATCH", 1000, minimum=1),
            ),
            retention=RetentionConfig(
                batch_size=env_int(environ, "STEPWISE_SWEEP_RETENTION_BATCH", 500, minimum=1)
            ),
            task_failures=TaskFailuresConfig(temporal_timeout_s=temporal_timeout),
            cancel_enforcement=CancelEnforcementConfig(
                grace_s=env_float(environ, "STEPWISE_CANCEL_GRACE_S", 30.0, minimum=0),
                temporal_timeout_s=temporal_timeout,
            ),
            shutdown_timeout_s=env_float(environ, "STEPWISE_SWEEP_SHUTDOWN_S", 20.0, minimum=0),
            db_pool_size=env_int(environ, "STEPWISE_SWEEPER_DB_POOL_SIZE", 10, minimum=2),
        )
