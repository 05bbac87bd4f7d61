"""k-reciprocal re-ranking, one probe at a time in numpy: the reference for ``reid.rerank``.

A plain transcription of the algorithm as its authors' released code implements it
(Zhong et al.'s ``re_ranking``, which torchreid ships in ``torchreid/utils/rerank.py``):
dense ``[N, N]`` arrays for the ``N = Q + G`` images, a Python loop per probe for the
k-reciprocal sets and their expansion, one for the query expansion and one for the
Jaccard sums.  Slow (minutes and 6-8 GB on Market-1501's 19,281 images) but easy to
check line by line against the paper.

Where that code (and so this one) differs from the paper's text:

* the neighbour lists ``N(i, k)`` hold ``k1 + 1`` images, the probe itself included
  (the paper writes ``N(p, k1)``);
* the half-size sets of the expansion use ``round(k1 / 2) + 1`` neighbours (numpy's
  ``around``, half to even), the paper ``k1 / 2``;
* a candidate's half-size set joins when strictly more than 2/3 of it lies in the
  probe's k-reciprocal set (``|H(c) & K(i)| > 2/3 |H(c)|``; the paper says ">= 2/3");
* distances are squared and each column of the joint matrix divided by its maximum
  before anything else; the Jaccard distance and the blend use these values.

Neighbour order: each row of the normalised matrix sorted ascending with a stable
sort, so ties go to the smaller index (the authors' code uses numpy's default,
unstable quicksort; ``reid.rerank`` uses the same stable rule).  Inputs are cast to
float32 first and all arithmetic is float32, as in the authors' code.

Reference:
    Z. Zhong, L. Zheng, D. Cao, S. Li, "Re-ranking Person Re-identification with
    k-reciprocal Encoding", CVPR 2017.
"""
from __future__ import annotations

import numpy as np


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """Members ``j`` of row ``i``'s first ``k`` neighbours whose own first ``k`` include ``i``."""
    forward = rank[i, :k]
    keep = [j for j in forward if i in rank[j, :k]]
    return np.asarray(keep, dtype=np.int64)


def _expanded_set(rank: np.ndarray, i: int, k1: int) -> np.ndarray:
    """Probe ``i``'s k-reciprocal set plus every candidate half-set that overlaps it > 2/3."""
    core = _reciprocal(rank, i, k1 + 1)
    members = [core]
    half = int(np.around(k1 / 2.0)) + 1
    for c in core:
        cand = _reciprocal(rank, int(c), half)
        overlap = len(np.intersect1d(cand, core))
        if overlap > 2.0 / 3.0 * len(cand):
            members.append(cand)
    return np.unique(np.concatenate(members))


def rerank_reference(q_g: np.ndarray, q_q: np.ndarray, g_g: np.ndarray, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3) -> np.ndarray:
    """Re-ranked distances ``[Q, G]`` (float32) from ``q_g [Q, G]``, ``q_q [Q, Q]``, ``g_g [G, G]``.

    Same arguments as ``reid.rerank.rerank_distances``; see the module docstring for
    the rules (stable tie order, ``k1 + 1`` neighbours, ``round(k1/2) + 1``, > 2/3).
    """
    q_g, q_q, g_g = (np.asarray(m, dtype=np.float32) for m in (q_g, q_q, g_g))
    nq = q_g.shape[0]
    joint = np.block([[q_q, q_g], [q_g.T, g_g]])  # [N, N]
    n = joint.shape[0]
    sq = joint * joint
    dist = (sq / sq.max(axis=0)).T  # row i: column i of the joint matrix, normalised
    rank = np.argsort(dist, axis=1, kind="stable")  # [N, N]

    v = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        e = _expanded_set(rank, i, k1)
        w = np.exp(-dist[i, e])
        v[i, e] = w / np.sum(w)

    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = np.mean(v[rank[i, :k2]], axis=0)
        v = v_qe

    holders = [np.nonzero(v[:, c])[0] for c in range(n)]  # rows with V[., c] != 0
    jaccard = np.zeros((nq, n), dtype=np.float32)
    for i in range(nq):
        shared = np.zeros(n, dtype=np.float32)
        for c in np.nonzero(v[i])[0]:
            rows = holders[c]
            shared[rows] += np.minimum(v[i, c], v[rows, c])
        jaccard[i] = 1 - shared / (2 - shared)
    final = jaccard * (1 - lambda_value) + dist[:nq] * lambda_value
    return final[:, nq:]
