"""Run priority and fairness weight: the ranges, and the Temporal `Priority` a run starts with."""

from __future__ import annotations

import math

import msgspec
import pytest
from stepwise_contract import dsl
from stepwise_contract.platform.launch import priority_of
from stepwise_contract.priority import run_priority, valid_fairness_weight


def test_a_run_starts_with_its_tenant_as_fairness_key() -> None:
    started = run_priority(tenant="t-1", priority=2, fairness_weight=3)
    assert (started.priority_key, started.fairness_key, started.fairness_weight) == (2, "t-1", 3.0)
    row = {"tenant": "t-2", "priority": 5, "fairness_weight": 0.5}
    assert priority_of(row) == run_priority(tenant="t-2", priority=5, fairness_weight=0.5)


@pytest.mark.parametrize(
    ("weight", "ok"),
    [(0.001, True), (1000.0, True), (1.0, True), (0.0009, False), (1000.1, False), (0.0, False),
     (-1.0, False), (math.nan, False), (math.inf, False)],
)  # fmt: skip
def test_fairness_weight_range(weight: float, ok: bool) -> None:
    assert valid_fairness_weight(weight) is ok


def test_definition_priority_defaults_to_3_and_is_bounded() -> None:
    assert dsl.decode_definition({"name": "x", "steps": []}).priority == 3
    assert dsl.decode_definition({"name": "x", "steps": [], "priority": 1}).priority == 1
    for bad in (0, 6, "1", 1.5, True, None):
        with pytest.raises(msgspec.ValidationError, match="priority"):
            dsl.decode_definition({"name": "x", "steps": [], "priority": bad})
