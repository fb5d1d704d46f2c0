"""`python -m stepwise_api`: start stepwise-api."""

from __future__ import annotations

import os

from stepwise_contract.platform.ops import run_service

from stepwise_api.service import serve
from stepwise_api.settings import Settings


def main() -> int:
    return run_service("stepwise-api", Settings.from_env, serve, os.environ)


if __name__ == "__main__":
    raise SystemExit(main())
