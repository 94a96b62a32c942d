"""Summary statistics for reports: percentiles, and means with 95% confidence intervals.

The interval is Student's t over repetitions (the usual choice for a handful of seeds);
the critical values are tabulated here rather than pulling in SciPy for one function.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["MeanInterval", "mean_interval", "percentile", "t_critical_95"]

# Two-sided 95% critical values of Student's t, by degrees of freedom.
_T95 = {
    1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
    9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
    17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064,
    25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042, 40: 2.021, 60: 2.000,
    120: 1.980,
}  # fmt: skip


def t_critical_95(degrees_of_freedom: int) -> float:
    """Two-sided 95% critical value of Student's t (1.96 beyond the table)."""
    if degrees_of_freedom < 1:
        return math.nan
    if degrees_of_freedom in _T95:
        return _T95[degrees_of_freedom]
    for bound in (40, 60, 120):
        if degrees_of_freedom < bound:
            return _T95[bound]
    return 1.96


@dataclass(frozen=True, slots=True)
class MeanInterval:
    """A mean and the half-width of its 95% confidence interval (NaN for one sample)."""

    mean: float
    half_width: float
    count: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        if self.count == 0:
            return "n/a"
        if not math.isfinite(self.half_width):
            return f"{self.mean:.4g}"
        return f"{self.mean:.4g} ± {self.half_width:.2g}"


def mean_interval(values: Sequence[float]) -> MeanInterval:
    """Mean of the finite ``values`` with a 95% t interval."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    count = int(array.size)
    if count == 0:
        return MeanInterval(math.nan, math.nan, 0)
    mean = float(array.mean())
    if count == 1:
        return MeanInterval(mean, math.nan, 1)
    standard_error = float(array.std(ddof=1)) / math.sqrt(count)
    return MeanInterval(mean, t_critical_95(count - 1) * standard_error, count)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``; NaN when empty."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return math.nan
    return float(np.percentile(array, q))
