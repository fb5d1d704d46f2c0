"""`STEPWISE_EVENT_LOOP` picks the loop `run_service` runs on; a bad value is a configuration
error (exit 2), never a silent fallback."""

from __future__ import annotations

import asyncio

import pytest
from stepwise_contract.platform.ops import event_loop_factory, run_service
from stepwise_contract.platform.settings import SettingsError


def test_asyncio_by_default_and_uvloop_on_request() -> None:
    assert event_loop_factory({}) is None
    assert event_loop_factory({"STEPWISE_EVENT_LOOP": "asyncio"}) is None
    factory = event_loop_factory({"STEPWISE_EVENT_LOOP": " UVLOOP "})
    assert factory is not None
    loop = factory()
    try:
        assert type(loop).__module__.startswith("uvloop")
    finally:
        loop.close()


@pytest.mark.parametrize("value", ["trio", "uvloop;rm -rf /", "0"])
def test_an_unknown_loop_is_a_configuration_error(value: str) -> None:
    with pytest.raises(SettingsError, match="STEPWISE_EVENT_LOOP"):
        event_loop_factory({"STEPWISE_EVENT_LOOP": value})


def test_run_service_runs_on_the_chosen_loop(capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    async def serve(_: object) -> None:
        seen.append(type(asyncio.get_running_loop()).__module__)

    assert run_service("t", lambda env: None, serve, {"STEPWISE_EVENT_LOOP": "uvloop"}) == 0
    assert run_service("t", lambda env: None, serve, {}) == 0
    assert seen[0].startswith("uvloop") and seen[1].startswith("asyncio")
    assert run_service("t", lambda env: None, serve, {"STEPWISE_EVENT_LOOP": "x"}) == 2
    assert "STEPWISE_EVENT_LOOP" in capsys.readouterr().err
