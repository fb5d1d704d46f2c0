"""Task-queue fairness is on in the Temporal dev server every stack starts, and the probe `doctor`
uses tells it apart from a server without it (started here with the same command, minus the
fairness setting). If `infra_servers.py` stopped enabling fairness, the first test fails."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from stepwise_cli.fairness_probe import SAMPLE, probe_fairness, verdict_for
from stepwise_contract.platform.temporal import connect_temporal
from stepwise_devkit.infra_servers import FAIRNESS_DYNAMIC_CONFIG, temporal_dev_server_headless


async def test_the_stack_server_runs_with_fairness_on(temporal_address: str) -> None:
    client = await connect_temporal(temporal_address, "default", claims=None)
    probe = await probe_fairness(client)
    assert probe.verdict == "on", probe


@pytest.fixture(scope="module")
def unfair_temporal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home: Path = tmp_path_factory.mktemp("unfair-temporal")
    proc, address = temporal_dev_server_headless(home)
    argv = list(proc.argv)
    for value in FAIRNESS_DYNAMIC_CONFIG:
        at = argv.index(value)
        del argv[at - 1 : at + 1]  # the flag and its value
    proc.argv = argv
    proc.start().wait_ready(60)
    try:
        yield address
    finally:
        proc.stop()


@pytest.mark.temporal
async def test_a_server_without_the_setting_is_reported_off(unfair_temporal: str) -> None:
    client = await connect_temporal(unfair_temporal, "default", claims=None)
    probe = await probe_fairness(client)
    assert probe.verdict == "off", probe
    assert probe.sampled == SAMPLE


def test_verdict_thresholds() -> None:
    assert verdict_for(0, SAMPLE) == "off"
    assert verdict_for(1, SAMPLE) == "off"
    assert verdict_for(2, SAMPLE) == "unclear"
    assert verdict_for(3, SAMPLE) == "on"
    # too few tasks came back to judge
    assert verdict_for(8, SAMPLE - 1) == "unclear"


def test_the_dev_server_keeps_one_task_queue_partition(tmp_path: Path) -> None:
    """Fairness is per partition: with one, a late tenant's task is not left in a partition the
    polls have not reached yet (docs/fairness.md, measured). Not provable by behaviour from the
    outside: the server reports backlog stats for the root partition only, and a poll on an empty
    child partition is forwarded to the root."""
    proc, _ = temporal_dev_server_headless(tmp_path)
    values = [
        proc.argv[i + 1] for i, arg in enumerate(proc.argv) if arg == "--dynamic-config-value"
    ]
    assert "matching.numTaskqueueReadPartitions=1" in values
    assert "matching.numTaskqueueWritePartitions=1" in values
