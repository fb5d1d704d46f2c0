"""`python -m stepwise_sweeper`: start stepwise-sweeper."""

from __future__ import annotations

import os

from stepwise_contract.platform.ops import run_service

from stepwise_sweeper.service import serve
from stepwise_sweeper.settings import Settings


def main() -> int:
    return run_service("stepwise-sweeper", Settings.from_env, serve, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
