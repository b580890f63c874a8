"""Percentiles and rates from per-call records."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(latencies_ms: Sequence[float], window_s: float, errors: int = 0) -> dict:
    calls = len(latencies_ms)
    return {
        "calls": calls,
        "window_s": round(window_s, 3),
        "calls_per_s": round(calls / window_s, 1) if window_s > 0 else 0.0,
        "p50_ms": _round(percentile(latencies_ms, 50)),
        "p99_ms": _round(percentile(latencies_ms, 99)),
        "errors": errors,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if not numerator or not denominator:
        return None
    return round(numerator / denominator, 3)
