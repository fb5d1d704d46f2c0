"""msgspec (0.22.0) crashes when threads use a Struct type for the first time at once; the worker
builds every workflow Struct's decoding info before it polls (`struct_warmup.py`).

The race runs in a child process: fresh Struct types, each converted by 8 threads released
together. Unwarmed, the child dies of a segfault within a fraction of a second here; warmed, it
survives the same loop.
"""

from __future__ import annotations

import subprocess
import sys

from stepwise_contract import dsl
from stepwise_contract.payloads import PreloadedRun, RunInput
from stepwise_worker.messages import ActionRequest, LoadedRun
from stepwise_worker.struct_warmup import workflow_struct_types
from stepwise_worker.workflow.checkpoint import LevelMark

RACE = """
import sys, threading, time
import msgspec
from stepwise_worker.struct_warmup import warm

SRC = '''
import msgspec
from typing import Any
class Leaf(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    a_b: int = 0
    d: dict[str, Any] = {}
class Mid(msgspec.Struct, frozen=True, kw_only=True):
    leaves: list[Leaf] = []
    x: Leaf | None = None
class Top(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    mids: list[Mid] = []
'''
DATA = {"name": "x", "mids": [{"leaves": [{"aB": 1}], "x": {"aB": 2}}]}
warmed = sys.argv[1] == "warm"
sys.setswitchinterval(1e-6)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    ns = {}
    exec(SRC, ns)
    top = ns["Top"]
    if warmed:
        warm([top])
    barrier = threading.Barrier(8)
    def go():
        barrier.wait()
        msgspec.convert(DATA, top)
    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
"""


def _race(mode: str, seconds: float) -> int:
    done = subprocess.run(
        [sys.executable, "-c", RACE, mode, str(seconds)],
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done.returncode


def test_unwarmed_types_crash_so_the_race_is_real() -> None:
    # if a msgspec upgrade fixes the race, this fails: struct_warmup.py can then go
    assert _race("cold", 10) != 0


def test_warmed_types_survive_concurrent_first_uses() -> None:
    assert _race("warm", 3) == 0


def test_every_struct_the_workflow_decodes_is_warmed() -> None:
    warmed = set(workflow_struct_types())
    assert {
        dsl.Definition, dsl.ActionCall, RunInput, PreloadedRun, LoadedRun, ActionRequest, LevelMark,
    } <= warmed  # fmt: skip
