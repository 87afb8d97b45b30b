"""Random but reproducible faults for the fake backend's reliability mode: the responses routes
(:class:`Faults`) and the usage endpoint (:class:`UsageFaults`). Tests only."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

from tests.fakes import replies
from tests.fakes.replies import Reply


@dataclass
class Faults:
    """Each unscripted request draws one number; the rates are slices of [0, 1) in field order.
    The same seed and the same request order give the same faults."""

    rate_429: float = 0.0
    rate_401: float = 0.0
    rate_5xx: float = 0.0
    rate_html_403: float = 0.0
    rate_slow: float = 0.0
    rate_drop: float = 0.0
    rate_overloaded: float = 0.0
    seed: int = 0
    slow_delay: float = 1.0  # seconds of the slow first byte
    resets_in: float = 30.0  # the 429's reset, kept short so a soak does not exhaust its pool
    counts: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        rates = self._slices()
        if any(rate < 0 for _, rate in rates) or sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must be >= 0 and add up to at most 1")
        self._rng = random.Random(self.seed)

    def _slices(self) -> list[tuple[str, float]]:
        return [
            ("429", self.rate_429),
            ("401", self.rate_401),
            ("5xx", self.rate_5xx),
            ("html_403", self.rate_html_403),
            ("slow", self.rate_slow),
            ("drop", self.rate_drop),
            ("overloaded", self.rate_overloaded),
        ]

    @property
    def total(self) -> float:
        return sum(rate for _, rate in self._slices())

    def pick(self) -> Reply | None:
        """The fault for the next request, or ``None`` for a normal answer."""
        with self._lock:
            draw = self._rng.random()
            extra = self._rng.random()  # always drawn, so one fault's shape never shifts the sequence
        edge = 0.0
        for name, rate in self._slices():
            edge += rate
            if draw < edge:
                with self._lock:
                    self.counts[name] = self.counts.get(name, 0) + 1
                return self._reply(name, extra)
        return None

    def _reply(self, name: str, extra: float) -> Reply:
        if name == "429":
            return replies.usage_limit(resets_in=self.resets_in, exhaust=False)
        if name == "401":
            return replies.unauthorized()
        if name == "5xx":
            return replies.server_error(502 if extra < 0.5 else 500)
        if name == "html_403":
            return replies.html_403()
        if name == "slow":
            return replies.slow(self.slow_delay)
        if name == "drop":
            return replies.drop(after=1 + int(extra * 8))  # somewhere between created and completed
        return replies.overloaded("error" if extra < 0.5 else "response.failed")


@dataclass
class UsageFaults:
    """A slow, sometimes failing ``wham/usage`` (as chatgpt.com's usage API is on a bad day): each
    draw is a reply for one usage call. ``rate_fail`` of them answer 500 or 502, the rest the real
    payload; ``rate_slow`` of all of them (failing or not) first wait ``delay`` seconds (uniform)."""

    rate_fail: float = 0.3
    rate_slow: float = 0.5
    delay: tuple[float, float] = (1.0, 8.0)
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def pick(self) -> Reply:
        with self._lock:
            fail, slow, wait, status = (self._rng.random(), self._rng.random(),
                                        self._rng.uniform(*self.delay), self._rng.choice((500, 502)))
        name = ("slow_" if slow < self.rate_slow else "") + ("fail" if fail < self.rate_fail else "ok")
        with self._lock:
            self.counts[name] = self.counts.get(name, 0) + 1
        reply = replies.server_error(status) if fail < self.rate_fail else replies.ok()
        return reply.but(first_byte_delay=wait if slow < self.rate_slow else 0.0)
