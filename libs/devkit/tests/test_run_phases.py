"""The phase summary printed beside the latency figures: p50 of each phase, in milliseconds."""

from __future__ import annotations

from stepwise_devkit.bench.run_phases import RunPhases, describe


def test_describe_takes_the_median_of_each_phase_apart() -> None:
    phases = [
        RunPhases(launch_s=0.010, queue_s=0.300, task_s=0.020),
        RunPhases(launch_s=0.030, queue_s=0.005, task_s=0.018),
        RunPhases(launch_s=0.012, queue_s=0.006, task_s=0.500),
    ]
    assert describe(phases) == "launch 12 ms · queue 6 ms · workflow task 20 ms"


def test_describe_without_runs() -> None:
    assert describe([]) == "no runs"
