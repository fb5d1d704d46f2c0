"""How the sweeper reads a failed Temporal call: retry later, or give up on the run now.

Only errors that no retry can fix are permanent: the server rejected the request itself
(`INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE`, `UNIMPLEMENTED`) or the input could not
be encoded (`TypeError`/`ValueError` from the converter). Everything else — connection refused,
`UNAVAILABLE`, timeouts, a missing namespace or credentials that an operator may fix — is transient:
the run is retried on later passes until its deadline.
"""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

_PERMANENT = frozenset(
    {
        RPCStatusCode.INVALID_ARGUMENT,
        RPCStatusCode.FAILED_PRECONDITION,
        RPCStatusCode.OUT_OF_RANGE,
        RPCStatusCode.UNIMPLEMENTED,
    }
)


def is_permanent(exc: BaseException) -> bool:
    if isinstance(exc, RPCError):
        return exc.status in _PERMANENT
    return isinstance(exc, TypeError | ValueError)


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND


def describe_error(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
