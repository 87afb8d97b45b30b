"""Exponential backoff per key (an account id, a task name): after each failure the next try waits
twice as long, from ``first`` up to ``most`` seconds; a success forgets the key.

Pure bookkeeping: the caller passes the time and does the waiting.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

_MAX_DOUBLINGS = 30  # 2**30 × first is past any sensible ``most``; keeps the power finite


@dataclass(frozen=True)
class Step:
    failures: int  # failures in a row
    delay: float  # seconds from the last failure to the next try
    until: float  # the time of the next try


@dataclass
class Backoff:
    first: float
    most: float
    _steps: dict[Hashable, Step] = field(default_factory=dict)

    def failed(self, key: Hashable, now: float) -> Step:
        """Note a failure at ``now``; returns when to try next."""
        failures = self._steps[key].failures + 1 if key in self._steps else 1
        delay = min(self.most, self.first * 2.0 ** min(failures - 1, _MAX_DOUBLINGS))
        step = Step(failures, delay, now + delay)
        self._steps[key] = step
        return step

    def succeeded(self, key: Hashable) -> None:
        self._steps.pop(key, None)

    def step(self, key: Hashable) -> Step | None:
        """The pending backoff of ``key``, or ``None`` when its last try worked."""
        return self._steps.get(key)

    def waiting(self, key: Hashable, now: float) -> bool:
        """Whether ``key`` failed and its next try is still ahead at ``now``."""
        step = self._steps.get(key)
        return step is not None and now < step.until
