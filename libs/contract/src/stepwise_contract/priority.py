"""Run priority and tenant fairness: what every run's Temporal start carries.

All tenants share one task queue. Temporal orders a backlogged queue first by `priority_key`
(lower first), then — with fairness enabled on the server (`matching.enableFairness`) — shares
dispatch among `fairness_key`s in proportion to their `fairness_weight`. A run's fairness key is
its tenant, its weight the tenant's `fairness_weight`, its priority key the run's priority.
Activities and child workflows inherit all three from the workflow that starts them, so a child
run of a tenant's run is that tenant's, at its parent's priority.
"""

from __future__ import annotations

import math
from typing import Final

from temporalio.common import Priority

# a run's priority is 1 (most urgent) … 5: `dsl.RunPriority`
DEFAULT_PRIORITY: Final = 3
DEFAULT_FAIRNESS_WEIGHT: Final = 1.0
# Temporal clamps weights to this range; outside it a weight would silently mean something else.
FAIRNESS_WEIGHT_MIN: Final = 0.001
FAIRNESS_WEIGHT_MAX: Final = 1000.0


def valid_fairness_weight(value: float) -> bool:
    return math.isfinite(value) and FAIRNESS_WEIGHT_MIN <= value <= FAIRNESS_WEIGHT_MAX


def run_priority(*, tenant: str, priority: int, fairness_weight: float) -> Priority:
    """The Temporal `Priority` of a run of `tenant` at `priority`."""
    return Priority(
        priority_key=priority, fairness_key=tenant, fairness_weight=float(fairness_weight)
    )
