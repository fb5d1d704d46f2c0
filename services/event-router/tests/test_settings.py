"""Router settings: parsed once, a bad value is a clear error (SPEC §12)."""

from __future__ import annotations

import pytest
from stepwise_contract.platform.settings import SettingsError
from stepwise_router.settings import DEFAULT_BACKOFF_S, DEFAULT_CORRELATION_PATHS, Settings


def test_defaults() -> None:
    settings = Settings.from_env({})
    assert settings.max_deliver == 5
    assert settings.concurrency == 64
    assert settings.ack_wait_s == 30.0
    assert settings.backoff_s == DEFAULT_BACKOFF_S
    assert settings.correlation_paths == DEFAULT_CORRELATION_PATHS
    assert settings.correlation_paths["*"][0] == "ticketId"


def test_values_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "STEPWISE_EVENT_MAX_DELIVER": "7",
            "STEPWISE_ROUTER_CONCURRENCY": "4",
            "STEPWISE_ROUTER_BATCH": "2",
            "STEPWISE_ROUTER_ACK_WAIT_S": "2.5",
            "STEPWISE_ROUTER_BACKOFF_S": "0.5, 1,3",
            "STEPWISE_CORRELATION_PATHS": '{"A": ["x.y"], "*": []}',
        }
    )
    assert (settings.max_deliver, settings.concurrency, settings.batch) == (7, 4, 2)
    assert settings.ack_wait_s == 2.5
    assert settings.backoff_s == (0.5, 1.0, 3.0)
    assert settings.correlation_paths == {"A": ["x.y"], "*": []}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STEPWISE_EVENT_MAX_DELIVER", "0"),
        ("STEPWISE_ROUTER_CONCURRENCY", "many"),
        ("STEPWISE_ROUTER_ACK_WAIT_S", "0"),
        ("STEPWISE_ROUTER_BACKOFF_S", "1,x"),
        ("STEPWISE_ROUTER_BACKOFF_S", "-1"),
        ("STEPWISE_CORRELATION_PATHS", "[1, 2]"),
        ("STEPWISE_CORRELATION_PATHS", '{"A": "x"}'),
        ("STEPWISE_CORRELATION_PATHS", '{"A": [""]}'),
    ],
)
def test_bad_values_are_refused(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        Settings.from_env({name: value})


def test_db_pool_follows_the_concurrency_unless_set() -> None:
    assert Settings.from_env({}).db_pool_size == 18
    assert Settings.from_env({"STEPWISE_ROUTER_CONCURRENCY": "8"}).db_pool_size == 10
    settings = Settings.from_env({"STEPWISE_ROUTER_DB_POOL_SIZE": "6"})
    assert settings.db_pool_size == 6
    with pytest.raises(SettingsError, match="STEPWISE_ROUTER_DB_POOL_SIZE"):
        Settings.from_env({"STEPWISE_ROUTER_DB_POOL_SIZE": "1"})
