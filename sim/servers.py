"""Service-time distributions of model servers, each knowing its analytic mean.

Samples are drawn in blocks from a per-version ``numpy.random.Generator`` so the event loop
pays one list index per request, and the stream is reproducible whatever else draws numbers.

    exponential(mean_ms)          mean = mean_ms
    lognormal(p50_ms, p99_ms)     mu = ln p50, sigma = (ln p99 - ln p50) / z_0.99,
                                  mean = exp(mu + sigma^2 / 2)
    empirical(samples_ms)         resampled with replacement, mean = sample mean
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Z_99", "ServiceSampler", "ServiceTime"]

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
