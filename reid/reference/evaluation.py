"""Plain per-query reference versions of the metrics in reid/metrics.py.

Written the slow, obvious way (one numpy pass per query, sorting the whole row),
in the style of the usual Market-1501 evaluator loop, so the vectorised versions
can be checked against them (tests/test_evaluate.py) and timed against them
(bench/bench_eval.py).  Ties use the same rule as reid/metrics.py: a stable sort
by distance, so equal distances keep gallery-index order.
"""

from __future__ import annotations

import numpy as np


def reference_rank_k(dist: np.ndarray, gt_index: np.ndarray, ks=(1, 5, 10)) -> dict[int, float]:
    """Rank-k of the one-correct-item protocol, one query at a time.

    Args:
        dist: ``[Q, G]`` distances.
        gt_index: ``[Q]`` correct gallery index per query.
        ks: the k values.

    Returns:
        ``{k: share of queries whose correct item is among the first k}``.
    """
    dist = np.asarray(dist)
    hits = {k: 0 for k in ks}
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        position = int(np.nonzero(order == gt_index[i])[0][0])  # 0-based rank
        for k in ks:
            hits[k] += position < k
    return {k: hits[k] / dist.shape[0] for k in ks}


def reference_cmc_map(
    dist: np.ndarray,
    q_ids: np.ndarray,
    g_ids: np.ndarray,
    q_cams: np.ndarray | None = None,
    g_cams: np.ndarray | None = None,
    max_rank: int = 50,
) -> dict:
    """CMC, mAP and mINP with one loop iteration per query.

    For each query: sort its row, drop gallery items with the query's identity and
    camera (when cameras are given), mark the matches, and read CMC, AP and INP off
    the cumulative match count.  Queries with no match left are skipped.

    Args:
        dist: ``[Q, G]`` distances.
        q_ids, g_ids: ``[Q]`` and ``[G]`` identities.
        q_cams, g_cams: ``[Q]`` and ``[G]`` cameras, or both None.
        max_rank: CMC length; a query's curve is padded with its last value when
            fewer gallery items remain.

    Returns:
        ``{"cmc": np.ndarray [max_rank], "mAP": float, "mINP": float, "num_valid": int}``.
    """
    dist = np.asarray(dist)
    q_ids, g_ids = np.asarray(q_ids), np.asarray(g_ids)
    curves, aps, inps = [], [], []
    for i in range(dist.shape[0]):
        order = np.argsort(dist[i], kind="stable")
        if q_cams is None:
            keep = np.ones(order.shape[0], dtype=bool)
        else:
            keep = ~((g_ids[order] == q_ids[i]) & (np.asarray(g_cams)[order] == q_cams[i]))
        match = (g_ids[order][keep] == q_ids[i]).astype(np.int64)
        if not match.any():
            continue
        found = np.cumsum(match)  # positives up to each position
        positions = np.nonzero(match)[0]  # 0-based ranks of the positives
        hit = (found > 0).astype(np.float64)
        if hit.shape[0] < max_rank:
            hit = np.concatenate([hit, np.full(max_rank - hit.shape[0], hit[-1])])
        curves.append(hit[:max_rank])
        precision = found[positions] / (positions + 1.0)
        aps.append(precision.mean())
        inps.append(match.sum() / (positions[-1] + 1.0))
    if not curves:
        raise ValueError("no query has a valid positive")
    return {
        "cmc": np.mean(curves, axis=0),
        "mAP": float(np.mean(aps)),
        "mINP": float(np.mean(inps)),
        "num_valid": len(curves),
    }
