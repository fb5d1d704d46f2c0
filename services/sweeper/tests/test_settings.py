"""Settings are parsed once from the environment; a bad value is a clear error (exit status 2)."""

from __future__ import annotations

import pytest
from stepwise_contract.platform.settings import SettingsError
from stepwise_sweeper.__main__ import main
from stepwise_sweeper.settings import Intervals, Settings


def test_defaults_follow_the_spec() -> None:
    settings = Settings.from_env({})
    assert settings.intervals == Intervals(
        expiry=60, reconcile=15, quota=300, buffer=60, retention=86400, task_failures=5,
        cancel_enforcement=10,
    )  # fmt: skip
    assert settings.cancel_enforcement.grace_s == 30
    assert (settings.reconcile.grace_s, settings.reconcile.deadline_s) == (30, 600)
    assert settings.buffer.lookback_s == 300
    assert settings.expiry.batch_size == 1000


def test_overrides() -> None:
    settings = Settings.from_env(
        {
            "STEPWISE_SWEEP_EXPIRY_INTERVAL_S": "5",
            "STEPWISE_SWEEP_RETENTION_INTERVAL_S": "0",
            "STEPWISE_RECONCILE_GRACE_S": "10",
            "STEPWISE_RECONCILE_DEADLINE_S": "120",
            "STEPWISE_EVENT_LOOKBACK_S": "60",
            "STEPWISE_SWEEP_EXPIRY_BATCH": "250",
            "STEPWISE_SWEEP_TEMPORAL_TIMEOUT_S": "3",
            "STEPWISE_SWEEP_TASK_FAILURES_INTERVAL_S": "1.5",
            "STEPWISE_SWEEP_CANCEL_ENFORCEMENT_INTERVAL_S": "0",
            "STEPWISE_CANCEL_GRACE_S": "2",
        }
    )
    assert (settings.intervals.task_failures, settings.intervals.cancel_enforcement) == (1.5, 0)
    assert settings.cancel_enforcement.grace_s == 2
    assert settings.task_failures.temporal_timeout_s == 3
    assert settings.cancel_enforcement.temporal_timeout_s == 3
    assert (settings.intervals.expiry, settings.intervals.retention) == (5, 0)
    assert (settings.reconcile.grace_s, settings.reconcile.deadline_s) == (10, 120)
    assert settings.reconcile.start_timeout_s == settings.quota.signal_timeout_s == 3
    assert settings.buffer.lookback_s == 60
    assert settings.expiry.batch_size == 250


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("STEPWISE_SWEEP_QUOTA_INTERVAL_S", "-1", "must be >= 0"),
        ("STEPWISE_SWEEP_EXPIRY_INTERVAL_S", "often", "is not a number"),
        ("STEPWISE_SWEEP_EXPIRY_BATCH", "0", "must be >= 1"),
        ("STEPWISE_CANCEL_GRACE_S", "-5", "must be >= 0"),
        ("STEPWISE_RECONCILE_DEADLINE_S", "5", "must be >= STEPWISE_RECONCILE_GRACE_S"),
    ],
)
def test_bad_values_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env({name: value})


def test_bad_value_stops_the_service_with_status_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STEPWISE_RECONCILE_DEADLINE_S", "1")
    assert main() == 2
    assert "STEPWISE_RECONCILE_DEADLINE_S=1 must be >=" in capsys.readouterr().err


def test_db_pool_size() -> None:
    assert Settings.from_env({}).db_pool_size == 10
    assert Settings.from_env({"STEPWISE_SWEEPER_DB_POOL_SIZE": "3"}).db_pool_size == 3
    with pytest.raises(SettingsError, match="STEPWISE_SWEEPER_DB_POOL_SIZE"):
        Settings.from_env({"STEPWISE_SWEEPER_DB_POOL_SIZE": "zero"})
