"""Model servers: service-time distributions (each knowing its analytic mean) and the pool
of servers a version's requests wait for.

Samples are drawn in blocks from a per-version ``numpy.random.Generator`` so the event loop
pays one list index per request, and the stream is reproducible whatever else draws numbers.

    exponential(mean_ms)          mean = mean_ms
    lognormal(p50_ms, p99_ms)     mu = ln p50, sigma = (ln p99 - ln p50) / z_0.99,
                                  mean = exp(mu + sigma^2 / 2)
    empirical(samples_ms)         resampled with replacement, mean = sample mean
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Z_99", "ServerPool", "ServiceSampler", "ServiceTime"]

#: Standard normal 0.99 quantile.
Z_99 = 2.3263478740408408


@dataclass(frozen=True, slots=True)
class ServiceTime:
    """A service-time law in milliseconds."""

    kind: str
    mean_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    samples_ms: tuple[float, ...] = ()

    @property
    def sigma(self) -> float:
        return (math.log(self.p99_ms) - math.log(self.p50_ms)) / Z_99

    def analytic_mean_ms(self) -> float:
        if self.kind == "exponential":
            return self.mean_ms
        if self.kind == "lognormal":
            return self.p50_ms * math.exp(self.sigma**2 / 2.0)
        return float(np.mean(self.samples_ms))

    def draw_ms(self, size: int, *, rng: np.random.Generator) -> np.ndarray:
        if self.kind == "exponential":
            return rng.exponential(self.mean_ms, size)
        if self.kind == "lognormal":
            return rng.lognormal(math.log(self.p50_ms), self.sigma, size)
        return rng.choice(np.asarray(self.samples_ms, dtype=np.float64), size)


class ServiceSampler:
    """Endless stream of service times (seconds) drawn in blocks."""

    __slots__ = (
        "_block",
        "_buffer",
        "_pos",
        "_rng",
        "cold_factor",
        "cold_length_s",
        "cold_start_s",
        "law",
        "scale",
    )

    def __init__(
        self,
        law: ServiceTime,
        *,
        rng: np.random.Generator,
        block: int = 8192,
        cold_factor: float = 1.0,
        cold_length_s: float = 0.0,
    ) -> None:
        self.law = law
        self.scale = 1.0  # fault multiplier (latency spikes)
        self.cold_factor = cold_factor
        self.cold_length_s = cold_length_s
        self.cold_start_s: float | None = None
        self._rng = rng
        self._block = block
        self._buffer: list[float] = []
        self._pos = 0

    def next_s(self, now_s: float) -> float:
        """Next service time in seconds for a request starting service at ``now_s``."""
        pos = self._pos
        if pos >= len(self._buffer):
            self._buffer = (self.law.draw_ms(self._block, rng=self._rng) / 1000.0).tolist()
            pos = 0
        self._pos = pos + 1
        value = self._buffer[pos] * self.scale
        if self.cold_factor > 1.0:
            value *= self._cold_multiplier(now_s)
        return value

    def _cold_multiplier(self, now_s: float) -> float:
        """Cold start: ``factor`` at the first request, easing linearly to 1 over the length."""
        if self.cold_start_s is None:
            self.cold_start_s = now_s
        elapsed = now_s - self.cold_start_s
        if elapsed >= self.cold_length_s:
            self.cold_factor = 1.0  # warm: stop paying for the check
            return 1.0
        return self.cold_factor - (self.cold_factor - 1.0) * elapsed / self.cold_length_s


class ServerPool:
    """A version's servers: ``capacity`` requests in service at once, the others waiting.

    Admission is exactly ``simpy.Resource``'s: a request, a release and a change of capacity
    each let at most the *oldest* waiting request in, if a slot is free (so after capacity
    grows, waiting requests are let in one per later request or release, as SimPy does).  A
    request let in starts at once: ``start(attempt)`` is called right away instead of through
    a request event and a release event per request, which the engine does not need (one
    callback chain per event, and SimPy runs those two events at the same simulated time,
    before anything else due then).

    ``attempt`` is any object with a mutable boolean ``granted``.
    """

    __slots__ = ("busy", "capacity", "start", "waiting")

    def __init__(self, capacity: int, start: Callable[[Any], None]) -> None:
        self.capacity = capacity
        self.busy = 0
        self.waiting: deque[Any] = deque()
        self.start = start

    def request(self, attempt: Any) -> None:
        """Queue ``attempt``, then let the oldest waiting request in if a slot is free."""
        self.waiting.append(attempt)
        self._admit()

    def cancel(self, attempt: Any) -> None:
        """Withdraw a waiting attempt (its client timed out); it never holds a slot."""
        self.waiting.remove(attempt)

    def release(self) -> None:
        """A request in service ended: free its slot and let the oldest waiting one in."""
        self.busy -= 1
        self._admit()

    def set_capacity(self, capacity: int) -> None:
        """Replicas crash or return: running requests finish, waiting ones wait for room."""
        self.capacity = capacity
        self._admit()

    def _admit(self) -> None:
        if self.waiting and self.busy < self.capacity:
            attempt = self.waiting.popleft()
            attempt.granted = True
            self.busy += 1
            self.start(attempt)
