"""`python -m stepwise_devkit.bench --smoke`: the bench harness runs end to end at tiny sizes (so it
never rots) and writes the figures file in the agreed shape. The numbers themselves mean nothing
at these sizes and are not asserted."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

NAMES = [
    "step_overhead_vs_regular",
    "step_overhead_vs_local",
    "large_payload_step_ms",
    "launch_per_s",
    "launch_p99_ms",
    "events_routed_per_s",
    "event_resume_p50_ms",
    "sweep_writer_p99_ms",
    "expression_isolation",
    "noisy_neighbour_p50_s",
]
# their baseline is not the same work: reported, never passed or failed
INFORMATION = {"step_overhead_vs_regular"}
FIELDS = {"name", "ours", "baseline", "unit", "ratio", "target", "ok"}


def test_bench_smoke_writes_all_figures(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "BENCH_OUT": str(out)}
    done = subprocess.run(
        [sys.executable, "-m", "stepwise_devkit.bench", "--smoke"],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    document = json.loads(out.read_text())
    assert list(document) == ["machine", "figures"]
    machine = document["machine"]
    assert machine["cores"] >= 1 and machine["temporal_server"] not in ("", "unknown"), machine
    assert f"machine: {machine['cores']} cores" in done.stdout
    figures = document["figures"]
    assert [f["name"] for f in figures] == NAMES
    for figure in figures:
        assert set(figure) == FIELDS, figure
        for field in ("ours", "baseline", "ratio"):
            assert isinstance(figure[field], int | float) and math.isfinite(figure[field]), figure
        assert figure["ours"] > 0 and figure["baseline"] > 0, figure
        assert figure["unit"] and figure["target"]
        if figure["name"] in INFORMATION:
            assert figure["ok"] is None and figure["target"] == "information", figure
        else:
            assert isinstance(figure["ok"], bool), figure
    # the same table is printed
    for name in NAMES:
        assert name in done.stdout
