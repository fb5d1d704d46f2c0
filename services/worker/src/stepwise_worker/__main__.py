"""`python -m stepwise_worker`: start stepwise-worker."""

from __future__ import annotations

import os

from stepwise_contract.platform.ops import run_service

from stepwise_worker.service import serve
from stepwise_worker.settings import Settings


def main() -> int:
    return run_service("stepwise-worker", Settings.from_env, serve, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
