"""`python -m stepwise_router`: start stepwise-router."""

from __future__ import annotations

import os

from stepwise_contract.platform.ops import run_service

from stepwise_router.service import serve
from stepwise_router.settings import Settings


def main() -> int:
    return run_service("stepwise-router", Settings.from_env, serve, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
