"""The bench's machine-CPU reading: it grows with work done, and says so when it cannot read."""

from __future__ import annotations

import math
import time

from stepwise_devkit.bench import machine_cpu


def test_busy_seconds_grow_with_work() -> None:
    before = machine_cpu.busy_seconds()
    assert before is not None and before > 0
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # 0.3 s of this process's own CPU
        pass
    after = machine_cpu.busy_seconds()
    assert after is not None
    # at least most of what this process burnt (clock ticks round it down)
    assert after - before >= 0.2


def test_per_item_ms() -> None:
    assert machine_cpu.per_item_ms(10.0, 12.5, 500) == 5.0
    assert math.isnan(machine_cpu.per_item_ms(None, 12.5, 500))
    assert math.isnan(machine_cpu.per_item_ms(10.0, 12.5, 0))
