"""The DSL retry policy (SPEC §3): whether to retry, and how long to wait first.

Pure functions; the interpreter sleeps with a durable workflow timer and draws jitter from the
workflow's seeded random, so both are replay-safe.
"""

from __future__ import annotations

from collections.abc import Callable

from stepwise_contract.dsl import RetryPolicy
from stepwise_contract.enums import ErrorCategory

# Without `retryOn`, every catchable category is retried except those that fail the same way
# every time (bad input, bad expression): retrying them only delays the inevitable.
DETERMINISTIC_CATEGORIES = frozenset({ErrorCategory.VALIDATION, ErrorCategory.EXPRESSION})

# Jitter spreads a delay uniformly over ±20% (the reference's legacy band).
JITTER_LOW = 0.8
JITTER_HIGH = 1.2


def should_retry(policy: RetryPolicy | None, attempt: int, category: str) -> bool:
    """Retry after failed `attempt` (1-based)? Cancellation never reaches here."""
    if policy is None or attempt >= policy.max_attempts:
        return False
    if policy.retry_on:
        return category in policy.retry_on
    return category not in DETERMINISTIC_CATEGORIES


def backoff_ms(policy: RetryPolicy, attempt: int, random: Callable[[], float]) -> int:
    """Delay before attempt `attempt + 1`: backoffMs * multiplier^(attempt-1),
    jittered, capped."""
    delay = policy.backoff_ms * policy.backoff_multiplier ** (attempt - 1)
    if policy.jitter:
        delay *= JITTER_LOW + (JITTER_HIGH - JITTER_LOW) * random()
    if policy.max_delay_ms is not None:
        delay = min(delay, policy.max_delay_ms)
    return max(0, int(delay))
