"""Small statistics for comparing runs: a percentile bootstrap interval, and a paired comparison of two
models on the same queries (ahead / behind / level).

Used by the notebook (Q11: the triplet model against the ID model, query by query) and by the
benchmark report (bench/: run pairs of the input-shape comparison).
"""
from __future__ import annotations

import random
from typing import Sequence

__all__ = ["mean", "bootstrap_interval", "paired_comparison"]


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def bootstrap_interval(values: Sequence[float], level: float = 0.95, draws: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement ``draws``
    times from a fixed seed, so the same values always give the same interval): the k-th smallest and
    k-th largest of the resampled means, k = draws × (1 − level) / 2."""
    rng = random.Random(seed)
    values = list(values)
    means = sorted(mean(rng.choices(values, k=len(values))) for _ in range(draws))
    k = round(draws * (1 - level) / 2)
    return means[k], means[draws - 1 - k]


def paired_comparison(a: Sequence[float], b: Sequence[float], level: float = 0.95,
                      draws: int = 10_000) -> tuple[str, float, tuple[float, float]]:
    """("ahead" | "behind" | "level", mean of a − b, its bootstrap interval) for per-item scores of two
    models on the same items (e.g. each val query's hit at rank 1: 1.0 or 0.0). "ahead" when the whole
    interval is above zero, "behind" when it is below, else "level"."""
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired_comparison needs two equally long, non-empty lists, got {len(a)} and {len(b)}")
    diff = [x - y for x, y in zip(a, b)]
    lo, hi = bootstrap_interval(diff, level, draws)
    word = "ahead" if lo > 0 else "behind" if hi < 0 else "level"
    return word, mean(diff), (lo, hi)
