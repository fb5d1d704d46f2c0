"""The Temporal floor's multiple of idle: B's p50 beside the load ÷ B's p50 alone."""

from __future__ import annotations

import pytest
from stepwise_devkit.bench.run_phases import TimedRuns
from stepwise_devkit.bench.temporal_floor import Floor


def test_the_floor_divides_the_medians_not_the_means() -> None:
    floor = Floor(
        idle=TimedRuns(latencies=[0.020, 0.500, 0.010], phases=[]),
        loaded=TimedRuns(latencies=[0.080, 0.060, 9.0, 0.070], phases=[]),
    )
    assert floor.ratio == pytest.approx(0.075 / 0.020)
