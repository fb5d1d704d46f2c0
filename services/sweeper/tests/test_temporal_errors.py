"""Which failed Temporal calls give up on a run at once, and which are retried until the deadline."""

from __future__ import annotations

import pytest
from stepwise_sweeper.temporal_errors import is_not_found, is_permanent
from temporalio.service import RPCError, RPCStatusCode


@pytest.mark.parametrize(
    ("exc", "permanent"),
    [
        (RPCError("bad request", RPCStatusCode.INVALID_ARGUMENT, b""), True),
        (RPCError("precondition", RPCStatusCode.FAILED_PRECONDITION, b""), True),
        (TypeError("cannot encode"), True),
        (RPCError("down", RPCStatusCode.UNAVAILABLE, b""), False),
        (RPCError("slow", RPCStatusCode.DEADLINE_EXCEEDED, b""), False),
        # a missing namespace or bad credentials can be fixed by an operator within the deadline
        (RPCError("namespace", RPCStatusCode.NOT_FOUND, b""), False),
        (RPCError("denied", RPCStatusCode.PERMISSION_DENIED, b""), False),
        (RuntimeError("Failed client connect: connection refused"), False),
        (TimeoutError(), False),
    ],
)
def test_permanent_or_transient(exc: BaseException, permanent: bool) -> None:
    assert is_permanent(exc) is permanent


def test_not_found() -> None:
    assert is_not_found(RPCError("gone", RPCStatusCode.NOT_FOUND, b""))
    assert not is_not_found(RPCError("down", RPCStatusCode.UNAVAILABLE, b""))
    assert not is_not_found(LookupError("gone"))
