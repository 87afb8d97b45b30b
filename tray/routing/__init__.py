"""The routing decision, pure: quota scores, the candidate ranking, session affinity, fast mode and
cooldowns. Time is passed in; nothing here does I/O.
"""

from __future__ import annotations

from tray.routing.affinity import AffinityMap, affinity_key
from tray.routing.cooldown import for_429, for_failure, is_entitlement_error
from tray.routing.fastmode import attempt_body as fast_body
from tray.routing.fastmode import decide as decide_fast
from tray.routing.ranking import RoutingSettings, available_at, dormant_labels, rank, soonest_reset

__all__ = [
    "AffinityMap", "RoutingSettings", "affinity_key", "available_at", "decide_fast", "dormant_labels",
    "fast_body", "for_429", "for_failure", "is_entitlement_error", "rank", "soonest_reset",
]
