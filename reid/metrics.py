"""Retrieval metrics from a distance matrix: Rank-k accuracy and CMC / mAP / mINP.

Everything here starts from distances ``[Q, G]`` (``reid.evaluate.pairwise_distance`` makes
them, once); ``reid.evaluate`` holds the feature-level entry points and ``Retrieval``.

Two protocols live here.

* The assignment's protocol (``rank_k_accuracy``): every query has exactly one
  correct gallery image; Rank-k is the share of queries whose correct gallery
  image is among the k nearest gallery features.
* The standard ReID protocol (``cmc_map``): every gallery image of the query's
  identity is a positive; with cameras given, gallery images of the same identity
  AND the same camera as the query are left out (Market-1501's rule).

Tie rule (both protocols, and the reference loops in ``reid/reference/evaluation.py``):
the gallery is ranked by distance, and equal distances are ranked by gallery index,
lower index first, exactly as a stable sort by distance would place them.  A
correct item therefore loses every tie against a lower-indexed wrong item
(pessimistic for the query in the common case) and the result never depends on
how a sort implementation happens to break ties.

References:
    L. Zheng, L. Shen, L. Tian, S. Wang, J. Wang, Q. Tian. "Scalable Person
    Re-identification: A Benchmark." ICCV 2015 (Market-1501; CMC and mAP).
    M. Ye, J. Shen, G. Lin, T. Xiang, L. Shao, S. C. H. Hoi. "Deep Learning for
    Person Re-identification: A Survey and Outlook." TPAMI 2021 (mINP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["rank_k_from_distances", "cmc_map_from_distances"]

# Elements of a [queries, gallery] block handled at once; 2**23 float32 = 32 MiB.
_BLOCK_ELEMENTS = 1 << 23


def _rows_per_block(num_cols: int, limit: int | None = None) -> int:
    """Rows of a [rows, num_cols] block that keep it near _BLOCK_ELEMENTS elements."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, num_cols))
    return rows if limit is None else max(1, min(rows, limit))


# --------------------------------------------------------------------------- Rank-k


def _check_distances(dist: Tensor, row_offset: int = 0) -> None:
    """Raise ValueError naming the first query row with a NaN or infinite distance."""
    if bool(torch.isfinite(dist.sum())):  # one cheap pass; a NaN or inf anywhere spoils the sum
        return
    finite = torch.isfinite(dist)
    if not bool(finite.all()):
        row = int((~finite).any(1).nonzero()[0, 0]) + row_offset
        raise ValueError(f"distance row {row} (query {row}) holds NaN or inf; expected finite distances")


def _as_index_vector(x: Any, name: str, length: int) -> Tensor:
    """A 1-D int64 tensor of the given length (integers only)."""
    t = torch.as_tensor(x)
    if t.dim() != 1 or t.shape[0] != length:
        raise ValueError(f"{name}: expected shape [{length}], got {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name}: expected integers, got dtype {t.dtype}")
    return t.to(torch.long)


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    return ks


def gt_ranks(dist: Tensor, gt: Tensor) -> Tensor:
    """0-based rank of each query's correct item under the tie rule.

    Args:
        dist: distances ``[C, G]``.
        gt: correct gallery index per query ``[C]`` (int64, on ``dist``'s device).

    Returns:
        ``[C]`` int64: gallery items strictly closer, plus items at the same distance
        with a lower gallery index.
    """
    d_gt = dist.gather(1, gt[:, None])  # [C, 1]
    # bool sums into int32 take a fast path (into int64 they are ~10x slower on CPU)
    closer = (dist < d_gt).sum(1, dtype=torch.int32)  # [C]
    cols = torch.arange(dist.shape[1], device=dist.device)  # [G]
    tied_before = ((dist == d_gt) & (cols < gt[:, None])).sum(1, dtype=torch.int32)  # [C]
    return (closer + tied_before).long()


def rank_k_from_distances(
    dist: Tensor,
    gt_index: Any,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[int, float]:
    """Rank-k accuracy of the assignment's protocol from a distance matrix.

    Query i is a hit at k when its correct gallery item ``gt_index[i]`` is among the
    k nearest, i.e. when fewer than k gallery items rank before it (closer, or
    equally close with a lower gallery index: see the module's tie rule).

    Args:
        dist: distances ``[Q, G]`` (smaller = more similar), finite.
        gt_index: the correct gallery index of each query, ``[Q]`` integers in
            ``[0, G)``.
        ks: the k values, e.g. ``(1, 5, 10)``.

    Returns:
        ``{k: share of queries that are hits at k}``, floats in ``[0, 1]``.

    Example:
        With ``dist = [[0.2, 0.1, 0.9]]`` and ``gt_index = [0]``, one gallery item
        is closer than the correct one: Rank-1 = 0.0, Rank-2 = 1.0.
    """
    ks = _check_ks(ks)
    dist = torch.as_tensor(dist)
    if dist.dim() != 2 or dist.shape[1] == 0:
        raise ValueError(f"dist: expected distances [Q, G] with G >= 1, got shape {tuple(dist.shape)}")
    num_q, num_g = dist.shape
    gt = _as_index_vector(gt_index, "gt_index", num_q)
    bad = ((gt < 0) | (gt >= num_g)).nonzero()
    if bad.numel():
        row = int(bad[0, 0])
        raise ValueError(
            f"gt_index row {row} (query {row}) is {int(gt[row])}; expected a gallery index in [0, {num_g})"
        )
    if num_q == 0:
        raise ValueError("rank-k accuracy needs at least one query, got 0")
    gt = gt.to(dist.device)
    rows = _rows_per_block(num_g)
    ranks = []
    for start in range(0, num_q, rows):
        block = dist[start : start + rows]
        _check_distances(block, start)
        ranks.append(gt_ranks(block, gt[start : start + rows]))
    rank = torch.cat(ranks).cpu()  # [Q]
    return {k: float((rank < k).double().mean()) for k in ks}


# --------------------------------------------------------------------------- CMC / mAP / mINP
#
# How cmc_map counts without sorting gallery rows.  Under the tie rule every
# gallery item has a unique sort key (distance, gallery index).  For one query let
# its valid positives, in key order, be p_0 < p_1 < ... < p_{P-1}.  The 0-based
# rank of p_k among the valid gallery items is k + n_k, where n_k is the number
# of valid negatives with a smaller key.  So it is enough to place every valid
# negative among the P sorted positives ("bucket" b = number of positives before
# it), take a histogram of the buckets and sum it cumulatively: n_k = #{b <= k}.
# Then  AP = mean_k (k + 1) / (k + n_k + 1),  INP = P / (P - 1 + n_{P-1} + 1),
# and the query is a hit at Rank-r when its first positive's rank n_0 < r.
#
# Two exact ways to find the buckets, picked per block of queries:
# * sparse: negatives farther than the hardest positive change nothing, so only
#   the others are gathered (few, for a useful model).  Their keys are packed into
#   one int64 (row in block, order-preserving float32 bits, gallery index), so one
#   1-D searchsorted into the block's sorted positive keys places them all.
# * dense (most items are candidates, e.g. an untrained model): one batched
#   searchsorted of the whole [C, G] block by distance, then an exact fix for the
#   few negatives at exactly a positive's distance.

# Above this share of candidate items in a block, the dense way is used.
_DENSE_SHARE = 0.2


def _float_order_bits(d: Tensor) -> Tensor:
    """Map float32 values to int64 in [0, 2**32) with the same order (-0.0 == +0.0).

    Args:
        d: ``[M]`` float32.

    Returns:
        ``[M]`` int64 keys; ``a < b`` as floats iff ``key(a) < key(b)``.
    """
    bits = (d + 0.0).view(torch.int32).to(torch.int64)  # + 0.0 turns -0.0 into +0.0
    bits = torch.where(bits >= 0, bits, bits ^ 0x7FFFFFFF)  # negative floats: reverse order
    return bits + (1 << 31)


def _sort_keys(row: Tensor, d: Tensor, col: Tensor, col_bits: int) -> Tensor:
    """One int64 key per item, ordered by (row, distance, gallery index)."""
    return (((row << 32) | _float_order_bits(d.contiguous())) << col_bits) | col


class _GalleryGroups:
    """The gallery grouped by identity, so a query's same-identity items are a slice.

    Attributes:
        order: ``[G]`` gallery indices sorted by identity (stable, so ascending
            gallery index within an identity).
        ids: ``[U]`` the distinct identities, ascending.
        starts, counts: ``[U]`` where each identity's slice of ``order`` starts, its size.
    """

    def __init__(self, g_ids: Tensor) -> None:
        self.order = torch.sort(g_ids, stable=True).indices  # [G]
        self.ids, self.counts = torch.unique_consecutive(g_ids[self.order], return_counts=True)
        self.starts = torch.cumsum(self.counts, 0) - self.counts

    def same_id_items(self, q_ids: Tensor) -> tuple[Tensor, Tensor]:
        """Gallery indices of each query's identity, padded.

        Args:
            q_ids: ``[C]`` query identities.

        Returns:
            ``idx`` ``[C, P]`` gallery indices, ascending along a row (padding holds
            some in-range index) and ``real`` ``[C, P]`` bool, False on padding;
            P = the largest group among these queries.
        """
        pos = torch.searchsorted(self.ids, q_ids).clamp(max=len(self.ids) - 1)  # [C]
        count = torch.where(self.ids[pos] == q_ids, self.counts[pos], 0)  # [C]
        width = int(count.max()) if count.numel() else 0
        slot = torch.arange(width)  # [P]
        real = slot[None, :] < count[:, None]  # [C, P]
        flat = (self.starts[pos][:, None] + slot[None, :]).clamp(max=len(self.order) - 1)
        return self.order[flat], real


class _CmcTotals:
    """Per-query results, filled block by block, reduced once at the end.

    Keeping one value per query (not running sums) makes the result independent of
    the block size, bit for bit.
    """

    def __init__(self, num_q: int, max_rank: int) -> None:
        self.max_rank = max_rank
        self.valid = torch.zeros(num_q, dtype=torch.bool)  # [Q] has a valid positive
        self.ap = torch.zeros(num_q, dtype=torch.float64)  # [Q]
        self.inp = torch.zeros(num_q, dtype=torch.float64)  # [Q]
        self.first_rank = torch.zeros(num_q, dtype=torch.long)  # [Q] 0-based rank of the first positive

    def result(self) -> dict[str, Any]:
        num_valid = int(self.valid.sum())
        if num_valid == 0:
            raise ValueError("no query has a valid positive in the gallery; CMC/mAP are undefined")
        first = self.first_rank[self.valid]
        hits = torch.bincount(first[first < self.max_rank], minlength=self.max_rank).double()
        cmc = torch.cumsum(hits, 0) / num_valid  # [max_rank]
        return {
            "cmc": cmc,
            "mAP": float(self.ap[self.valid].sum()) / num_valid,
            "mINP": float(self.inp[self.valid].sum()) / num_valid,
            "num_valid": num_valid,
        }


def _buckets_sparse(
    dist: Tensor, near: Tensor, pos_d: Tensor, pos_j: Tensor, num_pos: Tensor
) -> Tensor:
    """Histogram of negative buckets from the candidates only.

    Args:
        dist: ``[C, G]`` distances.
        near: ``[C, G]`` bool, the valid negatives no farther than the row's hardest positive.
        pos_d, pos_j: ``[C, P]`` each row's positives sorted by (distance, index); padding after.
        num_pos: ``[C]`` valid positives per row.

    Returns:
        ``[C, P + 1]`` int64: ``hist[c, b]`` = negatives with exactly b positives before them.
    """
    num_c, num_g = dist.shape
    width = pos_d.shape[1]
    col_bits = max(1, (num_g - 1).bit_length())
    rows = torch.arange(num_c)
    in_row = torch.arange(width)[None, :] < num_pos[:, None]  # [C, P]
    # Row-major order of the sorted positives is the order of their packed keys.
    pos_keys = _sort_keys(rows[:, None].expand(-1, width)[in_row], pos_d[in_row], pos_j[in_row], col_bits)  # [T]
    row_start = torch.cumsum(num_pos, 0) - num_pos  # [C] where each row's keys begin
    cr, cc = near.nonzero(as_tuple=True)  # [M] row and gallery index of each candidate
    neg_keys = _sort_keys(cr, dist[cr, cc], cc, col_bits)  # [M]
    bucket = torch.searchsorted(pos_keys, neg_keys) - row_start[cr]  # [M] in [0, P_row]
    hist = torch.bincount(cr * (width + 1) + bucket, minlength=num_c * (width + 1))
    return hist.view(num_c, width + 1)


def _buckets_dense(
    dist: Tensor, same_rows: Tensor, same_cols: Tensor, pos_d: Tensor, pos_j: Tensor
) -> Tensor:
    """Histogram of negative buckets from every gallery item.

    Args:
        dist: ``[C, G]`` distances.
        same_rows, same_cols: ``[S]`` positions of the same-identity items (not negatives).
        pos_d, pos_j: ``[C, P]`` each row's positives sorted by (distance, index); +inf padding.

    Returns:
        ``[C, P + 1]`` int64 as in ``_buckets_sparse``; items beyond a row's last
        positive land in bucket P_row, same-identity items in bucket P.
    """
    num_c, width = pos_d.shape
    bucket = torch.searchsorted(pos_d, dist)  # [C, G] positives strictly closer
    # A negative at exactly a positive's distance comes after the positives of equal
    # distance with a lower gallery index: count those (ties are rare, so few rows).
    padded = torch.cat([pos_d, pos_d.new_full((num_c, 1), float("inf"))], 1)  # [C, P + 1]
    tie = padded.gather(1, bucket) == dist  # [C, G]
    tie[same_rows, same_cols] = False
    tr, tc = tie.nonzero(as_tuple=True)  # [T']
    step = max(1, _BLOCK_ELEMENTS // max(1, width))
    for s in range(0, tr.numel(), step):
        r, c = tr[s : s + step], tc[s : s + step]
        equal_before = (pos_d[r] == dist[r, c][:, None]) & (pos_j[r] < c[:, None])  # [t, P]
        bucket[r, c] += equal_before.sum(1)
    bucket[same_rows, same_cols] = width
    ones = torch.ones(1, dtype=torch.long).expand(num_c, bucket.shape[1])
    return torch.zeros(num_c, width + 1, dtype=torch.long).scatter_add_(1, bucket, ones)


def _cmc_block(
    dist: Tensor,
    q_ids: Tensor,
    q_cams: Tensor | None,
    g_cams: Tensor | None,
    groups: _GalleryGroups,
    totals: _CmcTotals,
    offset: int,
) -> None:
    """Add one block of queries to ``totals`` (see the comment above for the method).

    Args:
        dist: ``[C, G]`` float32 CPU distances of C queries, finite.
        q_ids, q_cams: ``[C]`` the block's query identities and cameras (or None).
        g_cams: ``[G]`` gallery cameras (or None).
        groups: the gallery grouped by identity.
        totals: where the per-query results go.
        offset: index of the block's first query.
    """
    num_c = dist.shape[0]
    # Valid positives: same identity, and not the same camera when cameras are given.
    same_idx, real = groups.same_id_items(q_ids)  # [C, P], [C, P]
    valid = real if q_cams is None else real & (g_cams[same_idx] != q_cams[:, None])
    num_pos = valid.sum(1)  # [C]
    has_pos = num_pos > 0
    totals.valid[offset : offset + num_c] = has_pos
    if not bool(has_pos.any()):
        return
    # Each row's positives by (distance, gallery index): same_idx rows ascend and the sort is stable.
    pos_d, order = torch.sort(torch.where(valid, dist.gather(1, same_idx), float("inf")), dim=1, stable=True)
    pos_j = same_idx.gather(1, order)  # [C, P]
    width = pos_d.shape[1]
    last = (num_pos - 1).clamp(min=0)  # [C] index of the hardest positive
    hardest = torch.where(has_pos, pos_d.gather(1, last[:, None]).squeeze(1), float("-inf"))  # [C]

    same_rows, same_cols = real.nonzero(as_tuple=True)
    same_cols = same_idx[same_rows, same_cols]  # [S] gallery index of each same-identity item
    near = dist <= hardest[:, None]  # [C, G]
    near[same_rows, same_cols] = False  # positives are counted apart; same-camera ones are junk
    if int(torch.count_nonzero(near)) <= _DENSE_SHARE * near.numel():
        hist = _buckets_sparse(dist, near, pos_d, pos_j, num_pos)
    else:
        hist = _buckets_dense(dist, same_rows, same_cols, pos_d, pos_j)

    neg_before = torch.cumsum(hist, 1)[:, :width]  # [C, P] n_k
    k = torch.arange(width)[None, :]  # [1, P]
    rank = neg_before + k  # [C, P] 0-based rank of the k-th positive among valid items
    precision = torch.where(k < num_pos[:, None], (k + 1).double() / (rank + 1).double(), 0.0)
    # cumsum adds left to right, whatever the padding width: block-size independent.
    ap = torch.cumsum(precision, 1).gather(1, last[:, None]).squeeze(1) / num_pos.clamp(min=1)
    inp = num_pos / (rank.gather(1, last[:, None]).squeeze(1) + 1).double()
    sl = slice(offset, offset + num_c)
    totals.ap[sl] = torch.where(has_pos, ap, 0.0)
    totals.inp[sl] = torch.where(has_pos, inp, 0.0)
    totals.first_rank[sl] = torch.where(has_pos, rank[:, 0], 0)


def _prepare_labels(
    num_q: int, num_g: int, q_ids: Any, g_ids: Any, q_cams: Any, g_cams: Any, max_rank: int
) -> tuple[Tensor, Tensor, Tensor | None, Tensor | None]:
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    if (q_cams is None) != (g_cams is None):
        raise ValueError("give cameras for both queries and gallery, or for neither")
    q_ids = _as_index_vector(q_ids, "q_ids", num_q).cpu()
    g_ids = _as_index_vector(g_ids, "g_ids", num_g).cpu()
    if q_cams is not None:
        q_cams = _as_index_vector(q_cams, "q_cams", num_q).cpu()
        g_cams = _as_index_vector(g_cams, "g_cams", num_g).cpu()
    return q_ids, g_ids, q_cams, g_cams


def _block_rows(num_g: int, chunk_size: int | None) -> int:
    """Queries per block: the requested size, capped so packed keys fit in int64."""
    col_bits = max(1, (num_g - 1).bit_length())
    row_bits = 31 - col_bits  # 1 sign bit + row bits + 32 distance bits + col bits = 64
    if row_bits < 0:
        raise ValueError(f"gallery of {num_g} items is too large (at most 2**31)")
    return _rows_per_block(num_g, min(chunk_size or (1 << 62), 1 << row_bits))


def _cmc_over_blocks(
    distances: Callable[[slice], Tensor],
    num_q: int,
    num_g: int,
    q_ids: Any,
    g_ids: Any,
    q_cams: Any,
    g_cams: Any,
    max_rank: int,
    chunk_size: int | None,
) -> dict[str, Any]:
    """Validate the labels, then run ``_cmc_block`` over blocks of queries.

    Args:
        distances: gives the float32 CPU distances ``[C, G]`` of the queries in a slice.
        num_q, num_g: numbers of queries and gallery items.
        (the rest as in ``cmc_map``)
    """
    q_ids, g_ids, q_cams, g_cams = _prepare_labels(num_q, num_g, q_ids, g_ids, q_cams, g_cams, max_rank)
    groups = _GalleryGroups(g_ids)
    totals = _CmcTotals(num_q, max_rank)
    rows = _block_rows(num_g, chunk_size)
    for start in range(0, num_q, rows):
        sl = slice(start, start + rows)
        block = distances(sl)  # [C, G]
        _check_distances(block, start)
        q_cams_block = None if q_cams is None else q_cams[sl]
        _cmc_block(block, q_ids[sl], q_cams_block, g_cams, groups, totals, start)
    return totals.result()


def cmc_map_from_distances(
    dist: Tensor,
    q_ids: Any,
    g_ids: Any,
    q_cams: Any = None,
    g_cams: Any = None,
    max_rank: int = 50,
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """CMC, mAP and mINP over all same-identity gallery images, from distances.

    See ``cmc_map`` for the protocol.  Distances are compared as float32.

    Args:
        dist: ``[Q, G]`` distances (smaller = more similar), finite.
        q_ids, g_ids: ``[Q]`` and ``[G]`` integer identities.
        q_cams, g_cams: ``[Q]`` and ``[G]`` integer cameras, or both None.
        max_rank: length of the CMC curve.
        chunk_size: queries per block (memory bound); default: about 8M distances
            per block.  Results do not depend on it.

    Returns:
        Same dict as ``cmc_map``.
    """
    dist = torch.as_tensor(dist)
    if dist.dim() != 2 or dist.shape[1] == 0:
        raise ValueError(f"dist: expected distances [Q, G] with G >= 1, got shape {tuple(dist.shape)}")
    return _cmc_over_blocks(
        lambda sl: dist[sl].to(device="cpu", dtype=torch.float32).contiguous(),
        *dist.shape, q_ids, g_ids, q_cams, g_cams, max_rank, chunk_size,
    )
