"""The 10 MiB ceiling on a value entering a run (the run input, an action's output).

Values up to the ceiling are stored as they are: the data converter's claim-check codec keeps the
large ones out of Temporal's history (`stepwise_contract.claim_check`). Past it the value is a
non-retryable `ValidationError` (`PAYLOAD_TOO_LARGE`), never an endless retry.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

DEFAULT_MAX_BYTES: Final = 10 * 1024 * 1024

_encode = msgspec.json.Encoder().encode


class PayloadTooLarge(ValueError):
    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(f"{what} is {size} bytes, over the limit of {limit} bytes")
        self.size = size
        self.limit = limit


def size_of(value: Any) -> int:
    return len(_encode(value))


def check_size(value: Any, max_bytes: int, what: str) -> int:
    size = size_of(value)
    if size > max_bytes:
        raise PayloadTooLarge(size, max_bytes, what)
    return size
