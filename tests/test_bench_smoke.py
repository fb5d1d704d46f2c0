"""`python -m stepwise_devkit.bench --smoke`: the bench harness runs end to end at tiny sizes (so it
never rots) and writes the figures file in the agreed shape; so does the replicas bench
(`python -m stepwise_devkit.bench.replicas`). The numbers themselves mean nothing
at these sizes and are not asserted."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
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
    "launch_intake_per_s",
    "launch_p99_ms",
    "launch_p99_half_rate_ms",
    "launch_cpu_ms_per_run",
    "events_routed_per_s",
    "event_resume_p50_ms",
    "sweep_writer_p99_ms",
    "expression_isolation",
    "expression_isolation_benign",
    "expression_isolation_x_idle",
    "noisy_neighbour_p50_s",
    "noisy_neighbour_x_idle",
]
# their baseline is not the same work: reported, never passed or failed
INFORMATION = {
    "step_overhead_vs_regular",
    "launch_intake_per_s",
    "launch_cpu_ms_per_run",
    "expression_isolation_benign",
    # ours beside the Temporal floor (hand-written code under the same load)
    "expression_isolation_x_idle",
    "noisy_neighbour_x_idle",
}
FIELDS = {"name", "ours", "baseline", "unit", "ratio", "target", "ok", "ratio_goal", "ratio_ok"}
# the figures with a goal on their ratio to the baseline (besides the absolute target)
RATIO_GOALS = {"launch_per_s": ">= 0.8", "launch_p99_half_rate_ms": "<= 2",
               "events_routed_per_s": ">= 0.8", "event_resume_p50_ms": "<= 1.25"}  # fmt: skip
# `python -m stepwise_devkit.bench.replicas` at toy sizes: 4 stacks (1 and 2 replicas, 2 parts)
# two replicas only (a stack per part): one replica is what every other e2e stack runs
TOY_REPLICAS = ["--counts", "2", "--repeat", "1", "--seconds", "1",
                "--waiting", "20", "--burst", "20"]  # fmt: skip


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
        assert figure["ratio_goal"] == RATIO_GOALS.get(figure["name"]), figure
        if figure["ratio_goal"] is None:
            assert figure["ratio_ok"] is None, figure
        else:
            op, bound = figure["ratio_goal"].split()
            within = (
                figure["ratio"] <= float(bound) if op == "<=" else figure["ratio"] >= float(bound)
            )
            assert figure["ratio_ok"] is within, figure
    # the same table is printed
    for name in NAMES:
        assert name in done.stdout
    # the latency figures say where tenant B's time went, read from each run's history
    phases = r"launch \d+ ms · queue \d+ ms · workflow task \d+ ms"
    for label in ("B alone", "B beside hostile runs", "B beside benign runs"):
        assert re.search(f"{label}: {phases}", done.stdout), label
    assert len(re.findall(rf"noisy_neighbour: .* p50 [\d.]+ s \({phases}\)", done.stdout)) == 3
    # and so does the Temporal floor, for both
    floor = r"Temporal floor, B {}: p50 \d+ ms \({}\)"
    assert len(re.findall(floor.format("alone", phases), done.stdout)) == 2
    assert re.search(floor.format(r"beside \d+ in flight", phases), done.stdout)
    assert re.search(floor.format(r"beside \d+ queued", phases), done.stdout)
    for name in ("expression_isolation_x_idle", "noisy_neighbour_x_idle"):
        assert re.search(rf"{name}: ours x[\d.]+ idle; .* x[\d.]+ \(the machine's floor\)",
                         done.stdout), name  # fmt: skip


def _table_rows(stdout: str, header_start: str) -> dict[int, list[str]]:
    """The rows of the markdown table whose header starts with `header_start`: count → cells."""
    lines = stdout[stdout.index(header_start) :].splitlines()[2:]
    rows = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[int(cells[0])] = cells[1:]
    return rows


def test_replicas_bench_smoke() -> None:
    """`python -m stepwise_devkit.bench.replicas` at toy sizes: both parts, 2 replicas."""
    done = subprocess.run(
        [sys.executable, "-m", "stepwise_devkit.bench.replicas", *TOY_REPLICAS],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for header in ("| API replicas |", "| router replicas |"):
        rows = _table_rows(done.stdout, header)
        assert sorted(rows) == [2], done.stdout
        for count, (figure, ratio) in rows.items():
            assert float(figure.split()[0]) > 0 and float(ratio) > 0, (count, done.stdout)
    # with two API replicas, each answered launches (the round robin reached both)
    two = re.search(r"2 API replica\(s\):.*\n.*answered per replica: (\d+), (\d+)", done.stdout)
    assert two is not None and min(map(int, two.groups())) > 0, done.stdout
