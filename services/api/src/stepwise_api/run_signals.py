"""Signals to a run's workflow, with Temporal failures mapped to API errors."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import structlog
from stepwise_contract.names import workflow_id_for
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from stepwise_api.errors import ApiError

log = structlog.get_logger("stepwise_api.run_signals")
RPC_TIMEOUT = timedelta(seconds=5)


async def signal_run(client: Client, run_id: uuid.UUID, name: str, arg: Any) -> None:
    """Signal the run's workflow; a closed or missing workflow is 409, an unreachable Temporal
    503 (the caller's transaction then rolls back: nothing changes)."""
    try:
        await client.get_workflow_handle(workflow_id_for(str(run_id))).signal(
            name, arg, rpc_timeout=RPC_TIMEOUT
        )
    except RPCError as exc:
        log.warning("signal_failed", run_id=str(run_id), signal=name, error=str(exc))
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(
                409,
                "WORKFLOW_NOT_RUNNING",
                "the run's Temporal workflow is not running; nothing was changed",
                runId=str(run_id),
            ) from None
        raise _unavailable(run_id, exc) from None
    except Exception as exc:
        log.warning("signal_failed", run_id=str(run_id), signal=name, error=str(exc))
        raise _unavailable(run_id, exc) from None


def _unavailable(run_id: uuid.UUID, exc: Exception) -> ApiError:
    return ApiError(
        503,
        "WORKFLOW_TEMPORAL_SIGNAL_FAILED",
        "Temporal could not deliver the signal right now; nothing was changed",
        runId=str(run_id),
        error=str(exc)[:500],
    )
