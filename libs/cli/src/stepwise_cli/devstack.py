"""`stepwise dev`: the dev stack launcher (being written)."""

from __future__ import annotations

import sys
from collections.abc import Mapping


def run_dev(environ: Mapping[str, str]) -> int:
    print("stepwise dev: not implemented yet", file=sys.stderr)
    return 1
