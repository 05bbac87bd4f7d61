"""k-reciprocal re-ranking of query-gallery distances, vectorised and chunked in torch.

The algorithm is the one of Zhong et al. as their released code (and torchreid's
``re_ranking``) implements it, on all ``N = Q + G`` images together:

1. ``D'[i, j] = D[j, i]^2 / max_k D[k, i]^2``: squared distances of the joint
   ``[N, N]`` matrix, each column divided by its maximum, then transposed (row ``i``
   of ``D'`` is column ``i`` of the joint matrix).
2. ``R(i, k)``: the ``k`` first images of row ``i`` of ``D'`` in ascending order, ties
   broken by the smaller index (a stable sort); ``i`` itself is normally first.
3. k-reciprocal set ``K(i) = {j in R(i, k1+1) : i in R(j, k1+1)}``; each ``c`` in
   ``K(i)`` with a half-size set ``H(c)`` (same rule with ``round(k1/2)+1``, Python's
   half-to-even rounding) such that more than 2/3 of ``H(c)`` lies in ``K(i)`` adds
   ``H(c)`` to the expanded set ``E(i)``.
4. ``V[i, j] = exp(-D'[i, j]) / sum_{j' in E(i)} exp(-D'[i, j'])`` for ``j in E(i)``, else 0;
   then (if ``k2 != 1``) local query expansion: row ``i`` becomes the mean of the rows
   of its ``k2`` first neighbours ``R(i, k2)``.
5. Jaccard distance ``J = 1 - s / (2 - s)`` with ``s = sum_c min(V[i, c], V[j, c])``;
   the result is ``(1 - lambda) J + lambda D'`` on the query rows and gallery columns.

Nothing ``[N, N]`` is built.  The top-k lists come from blocks of rows of ``D'``
(``torch.topk``, then the exact stable order from integer keys ``float bits << b |
column``; rows whose k-th value recurs past position k are redone on the keys): this
pass reads all ``N^2`` entries and takes most of the time.  Reciprocity is a compare
of ``[N, k, k]`` neighbour lists; ``K(i)`` is a sorted row searched with
``searchsorted``; ``V`` is kept sparse (at most ``(k1+1)(round(k1/2)+2)`` entries a row,
about 20 on Market-like data; ``k2`` times that after the expansion, coalesced by a
sort); the Jaccard sums walk ``V``'s non-zeros through a column index of the gallery
rows.  Working memory is a few blocks of ``BLOCK_ELEMS`` elements plus the sparse
``V``; the inputs (``g_g`` is ``[G, G]``) and the ``[Q, G]`` output dominate.
All arithmetic is float32 on the inputs' device.

Reference:
    Z. Zhong, L. Zheng, D. Cao, S. Li, "Re-ranking Person Re-identification with
    k-reciprocal Encoding", CVPR 2017.  Plain per-probe version: ``reid.reference.rerank``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from reid.distance import pairwise_distance

BLOCK_ELEMS = 1 << 23  # elements in one dense working block (8M: 32-64 MB)
_TERMS = 8  # sparse work (about 8 int64 / float temporaries an item) takes BLOCK_ELEMS // _TERMS items


class _Joint:
    """``D'`` (step 1) of the joint problem, read by blocks of rows or by entries."""

    def __init__(self, q_g: Tensor, q_q: Tensor, g_g: Tensor) -> None:
        self.qg, self.qq, self.gg = q_g, q_q, g_g
        self.nq, self.n = q_g.shape[0], q_g.shape[0] + q_g.shape[1]
        self.shift = max(1, (self.n - 1).bit_length())

        def sq_max(t: Tensor, dim: int) -> Tensor:  # max of t*t along dim, without t*t
            hi, lo = t.amax(dim), t.amin(dim)
            return torch.maximum(hi * hi, lo * lo)

        self.col_max = torch.cat([torch.maximum(sq_max(q_q, 0), sq_max(q_g, 1)),
                                  torch.maximum(sq_max(q_g, 0), sq_max(g_g, 0))])  # [N]
        if not bool((self.col_max > 0).all()):
            i = int((self.col_max <= 0).nonzero()[0])
            raise ValueError(f"image {i} of the {self.n} (queries first): all its distances are 0")

    def rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of ``D'``, ``[stop - start, N]``; no block crosses ``Q``."""
        nq = self.nq
        if stop <= nq:
            joint_cols = torch.cat([self.qq[:, start:stop].t(), self.qg[start:stop]], 1)
        else:
            g = slice(start - nq, stop - nq)
            joint_cols = torch.cat([self.qg[:, g], self.gg[:, g]], 0).t().contiguous()  # blocked transpose
        return joint_cols.mul_(joint_cols).div_(self.col_max[start:stop, None])

    def at(self, r: Tensor, c: Tensor) -> Tensor:
        """``D'[r, c]`` element-wise for index tensors of one shape."""
        a, b, nq = c.reshape(-1), r.reshape(-1), self.nq  # D'[r, c] = D[c, r]^2 / max
        ga, gb = (a - nq).clamp(min=0), (b - nq).clamp(min=0)
        qa, qb = a.clamp(max=nq - 1), b.clamp(max=nq - 1)
        ng = self.n - nq

        def take(src: Tensor, flat: Tensor) -> Tensor:
            return torch.index_select(src.view(-1), 0, flat)

        d = torch.where(a < nq, torch.where(b < nq, take(self.qq, qa * nq + qb), take(self.qg, qa * ng + gb)),
                        torch.where(b < nq, take(self.qg, qb * ng + ga), take(self.gg, ga * ng + gb)))
        return (d * d / self.col_max[b]).reshape(r.shape)

    def keys(self, d: Tensor, c: Tensor) -> Tensor:
        """Unique sort keys of ``D'`` values ``d >= 0`` in columns ``c`` (ties: smaller ``c``)."""
        return (d.contiguous().view(torch.int32).long() << self.shift) | c


def _top_lists(jd: _Joint, k: int) -> Tensor:
    """``R(i, k)`` for every row ``i`` of ``D'``, ``[N, k]`` (ascending, ties by index)."""
    cols = torch.arange(jd.n, device=jd.qg.device)
    step = max(1, BLOCK_ELEMS // jd.n)
    ranks = []
    for lo, hi in ((0, jd.nq), (jd.nq, jd.n)):
        for s in range(lo, hi, step):
            d = jd.rows(s, min(s + step, hi))  # [C, N]
            val, idx = torch.topk(d, min(k + 1, jd.n), dim=1, largest=False)  # ties: any order
            key = jd.keys(val[:, :k], idx[:, :k])
            tied = (val[:, k] == val[:, k - 1]).nonzero()[:, 0] if k < jd.n else idx[:0, 0]
            if len(tied):  # the k-th value recurs past position k: take the smaller indices
                key[tied] = torch.topk(jd.keys(d[tied], cols), k, dim=1, largest=False).values
            ranks.append(key.sort(1).values & ((1 << jd.shift) - 1))
    return torch.cat(ranks)


def _reciprocal(rank: Tensor, k: int) -> Tensor:
    """``[N, k]`` bool: ``i in R(R(i, k)[a], k)`` (the a-th neighbour has ``i`` among its k)."""
    n, top = rank.shape[0], rank[:, :k]
    step = max(1, BLOCK_ELEMS // _TERMS // (k * k))
    me = torch.arange(n, device=rank.device)
    return torch.cat([(top[top[s : s + step]] == me[s : s + step, None, None]).any(2)
                      for s in range(0, n, step)])


def _ragged(starts: Tensor, counts: Tensor) -> tuple[Tensor, Tensor]:
    """Expand segments: for ``[P]`` starts and counts, ``(owner [T], position [T])``."""
    owner = torch.repeat_interleave(torch.arange(len(counts), device=counts.device), counts)
    first = torch.cumsum(counts, 0) - counts
    return owner, torch.arange(len(owner), device=counts.device) - first[owner] + starts[owner]


def _encode(jd: _Joint, rank: Tensor, k1: int, kh: int) -> list[Tensor]:
    """Steps 3-4 before the expansion: sparse ``V`` as ``[row, col, value]``, row-major."""
    forward, half = rank[:, :k1], rank[:, :kh]  # [N, k1], [N, kh]
    recip, h_ok = _reciprocal(rank, k1), _reciprocal(rank, kh)  # K(i), H(i) as masks
    h_size = h_ok.sum(1)
    step = max(1, BLOCK_ELEMS // _TERMS // (k1 * (kh + 1)))
    out: list[list[Tensor]] = [[], [], []]
    for s in range(0, jd.n, step):
        cand, ok_c = forward[s : s + step], recip[s : s + step]  # [C, k1]
        members, ok = half[cand], h_ok[cand]  # [C, k1, kh]: H candidates of each c in R(i, k1+1)
        core = torch.where(ok_c, cand, jd.n).sort(1).values  # K(i) ascending, padded with N
        flat = members.reshape(len(cand), -1)
        slot = torch.searchsorted(core, flat).clamp_(max=k1 - 1)
        in_k = (core.gather(1, slot) == flat).view_as(members)
        hits = (ok & in_k).sum(2)  # |H(c) & K(i)|, [C, k1]
        take = ok_c & (3 * hits > 2 * h_size[cand])  # H(c) overlaps K(i) by more than 2/3
        added = torch.where(take[:, :, None] & ok, members, jd.n).reshape(len(cand), -1)
        every = torch.cat([core, added], 1).sort(1).values  # E(i) with repeats and padding
        keep = every < jd.n
        keep[:, 1:] &= every[:, 1:] != every[:, :-1]
        r, j = keep.nonzero(as_tuple=True)
        c = every[r, j]
        w = torch.exp(-jd.at(r + s, c))
        total = torch.zeros(len(cand), dtype=w.dtype, device=w.device).index_add_(0, r, w)
        for lst, t in zip(out, (r + s, c, w / total[r])):
            lst.append(t)
    return [torch.cat(t) for t in out]


def _expand_queries(v: list[Tensor], rank: Tensor, n: int, k2: int) -> list[Tensor]:
    """Step 4's local query expansion: row ``i`` of ``V`` := mean of rows ``R(i, k2)``."""
    row, col, val = v
    counts = torch.bincount(row, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    step = max(1, BLOCK_ELEMS // _TERMS // (k2 * max(1, int(counts.max()))))
    out: list[list[Tensor]] = [[], [], []]
    for s in range(0, n, step):
        nb = rank[s : s + step, :k2]  # [C, k2]
        owner, pos = _ragged(starts[nb].reshape(-1), counts[nb].reshape(-1))
        key = (torch.div(owner, nb.shape[1], rounding_mode="floor") + s) * n + col[pos]
        key, order = key.sort(stable=True)  # row-major; a column's terms in neighbour order
        uniq, inv = torch.unique_consecutive(key, return_inverse=True)
        total = torch.zeros(len(uniq), dtype=val.dtype, device=val.device).index_add_(0, inv, val[pos][order])
        for lst, t in zip(out, (uniq // n, uniq % n, total / nb.shape[1])):
            lst.append(t)
    return [torch.cat(t) for t in out]


def _query_groups(work: Tensor, budget: int, max_rows: int) -> list[tuple[int, int]]:
    """Split queries ``0..Q`` into consecutive groups of about ``budget`` work each."""
    groups, start, acc = [], 0, 0
    for q, w in enumerate(work.tolist()):
        if q > start and (acc + w > budget or q - start >= max_rows):
            groups.append((start, q))
            start, acc = q, 0
        acc += w
    return groups + [(start, len(work))]


def _jaccard_blend(jd: _Joint, v: list[Tensor], lam: float) -> Tensor:
    """Step 5: ``(1 - lam) J + lam D'`` on query rows and gallery columns, ``[Q, G]``."""
    row, col, val = v
    nq, ng = jd.nq, jd.n - jd.nq
    gal = row >= nq
    order = torch.argsort(col[gal], stable=True)  # column index of the gallery rows
    g_row, g_col, g_val = row[gal][order] - nq, col[gal][order], val[gal][order]
    col_cnt = torch.bincount(g_col, minlength=jd.n)
    col_start = torch.cumsum(col_cnt, 0) - col_cnt
    qry = ~gal  # row-major: query i's entries are contiguous
    q_row, q_col, q_val = row[qry], col[qry], val[qry]
    q_start = torch.cumsum(torch.bincount(q_row, minlength=nq), 0).tolist()
    work = torch.zeros(nq, dtype=torch.long, device=row.device).index_add_(0, q_row, col_cnt[q_col])
    out = torch.empty(nq, ng, dtype=val.dtype, device=val.device)
    for s, e in _query_groups(work, BLOCK_ELEMS // _TERMS, max(1, BLOCK_ELEMS // ng)):
        lo, hi = (q_start[s - 1] if s else 0), q_start[e - 1]
        owner, pos = _ragged(col_start[q_col[lo:hi]], col_cnt[q_col[lo:hi]])
        both = torch.minimum(q_val[lo:hi][owner], g_val[pos])
        shared = torch.zeros((e - s) * ng, dtype=val.dtype, device=val.device)
        shared.index_add_(0, (q_row[lo:hi][owner] - s) * ng + g_row[pos], both)
        shared = shared.view(e - s, ng)
        base = jd.qg[s:e] * jd.qg[s:e] / jd.col_max[s:e, None]
        out[s:e] = (1 - shared / (2 - shared)) * (1 - lam) + base * lam
    return out


def _check(q_g: Any, q_q: Any, g_g: Any, k1: int, k2: int, lam: float) -> tuple[Tensor, ...]:
    """The three matrices as float32 tensors on one device, or a ValueError saying what is wrong."""
    mats = [torch.as_tensor(m) for m in (q_g, q_q, g_g)]
    if mats[0].dim() != 2 or min(mats[0].shape) < 1:
        raise ValueError(f"q_g: expected query-gallery distances [Q, G], Q, G >= 1; got {tuple(mats[0].shape)}")
    nq, ng = mats[0].shape
    for name, m, want in (("q_q", mats[1], (nq, nq)), ("g_g", mats[2], (ng, ng))):
        if tuple(m.shape) != want:
            raise ValueError(f"{name}: expected shape {list(want)} to match q_g {[nq, ng]}, got {list(m.shape)}")
    if len({m.device for m in mats}) > 1:
        raise ValueError(f"q_g, q_q, g_g: on different devices {[str(m.device) for m in mats]}")
    for name, m in zip(("q_g", "q_q", "g_g"), mats):
        if not m.is_floating_point() or not bool(torch.isfinite(m.amax()) & torch.isfinite(m.amin())):
            raise ValueError(f"{name}: expected finite floating-point distances")
    for name, k in (("k1", k1), ("k2", k2)):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"{name}: expected an integer >= 1, got {k!r}")
    if not 0.0 <= float(lam) <= 1.0:
        raise ValueError(f"lambda_value: expected a number in [0, 1], got {lam!r}")
    return tuple(m.to(torch.float32).contiguous() for m in mats)


def rerank_distances(q_g: Tensor, q_q: Tensor, g_g: Tensor, k1: int = 20, k2: int = 6,
                     lambda_value: float = 0.3) -> Tensor:
    """k-reciprocal re-ranking (module docstring) of query-gallery distances.

    Args:
        q_g: query-gallery distances ``[Q, G]`` (any non-negative metric; the paper's
            Euclidean or ``1 - cos``), finite; numpy arrays are accepted.
        q_q: query-query distances ``[Q, Q]``.
        g_g: gallery-gallery distances ``[G, G]``; all three on one device.
        k1: size of the k-reciprocal neighbourhoods (the lists hold ``k1 + 1`` images).
        k2: neighbours averaged by the local query expansion (1: none).
        lambda_value: weight of the original distance ``D'`` in ``[0, 1]``.

    Returns:
        Re-ranked distances ``[Q, G]``, float32, on the inputs' device; smaller is
        more similar.  Neighbour ties are broken by the smaller index (stable sort).
        Equal to ``reid.reference.rerank.rerank_reference`` to float32 rounding.

    Reference: Zhong et al., CVPR 2017 (see the module docstring).
    """
    q_g, q_q, g_g = _check(q_g, q_q, g_g, k1, k2, lambda_value)
    jd = _Joint(q_g, q_q, g_g)
    n = jd.n
    k_full, k_half, k_qe = min(k1 + 1, n), min(round(k1 / 2) + 1, n), min(k2, n)
    rank = _top_lists(jd, max(k_full, k_half, k_qe))
    v = _encode(jd, rank, k_full, k_half)
    if k2 != 1:
        v = _expand_queries(v, rank, n, k_qe)
    return _jaccard_blend(jd, v, float(lambda_value))


def rerank_from_features(q_feats: Tensor, g_feats: Tensor, metric: str = "euclidean", k1: int = 20,
                         k2: int = 6, lambda_value: float = 0.3,
                         distance_fn: Callable[[Tensor, Tensor, str], Tensor] | None = None) -> Tensor:
    """Re-ranked distances ``[Q, G]`` from query features ``[Q, D]`` and gallery ``[G, D]``.

    Builds the three matrices with ``distance_fn(x, y, metric)`` (default:
    ``reid.evaluate.pairwise_distance``: Euclidean, or ``1 - cos`` for ``"cosine"``,
    the metric a model is ranked by), then calls ``rerank_distances``.  Peak memory
    holds the ``[G, G]`` gallery matrix (1 GB float32 for Market-1501's 15,913 images).

    Reference: Zhong et al., CVPR 2017 (see the module docstring).
    """
    dist = distance_fn or pairwise_distance
    q, g = torch.as_tensor(q_feats), torch.as_tensor(g_feats)
    return rerank_distances(dist(q, g, metric), dist(q, q, metric), dist(g, g, metric),
                            k1=k1, k2=k2, lambda_value=lambda_value)
