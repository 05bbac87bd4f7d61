"""Evaluation: features once per model and view, distances once, every metric from them.

The path: ``extract_features`` (``[N, D]``) → ``pairwise_distance`` (``[Q, G]``) → metrics.
``retrieve(model, dataset)`` runs it for a retrieval set and returns a :class:`Retrieval`
(features, distances, ground truth) whose ``metrics()`` gives ``rank1``, ``rank5``,
``rank10``, ``mAP`` and ``mINP`` and whose ``ranked(k)`` gives each query's nearest gallery
images; reports, figures and predictions read that object instead of re-measuring.

Two protocols live here.

* The assignment's protocol (``rank_k_accuracy``): every query has exactly one
  correct gallery image; Rank-k is the share of queries whose correct gallery
  image is among the k nearest gallery features.
* The standard ReID protocol (``cmc_map``): every gallery image of the query's
  identity is a positive; with cameras given, gallery images of the same identity
  AND the same camera as the query are left out (Market-1501's rule).

Tie rule (both protocols, and the reference loops in ``bench/reference_eval.py``):
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

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

__all__ = [
    "BatchSource",
    "RETRIEVAL_METRICS",
    "Retrieval",
    "retrieve",
    "extract_features",
    "pairwise_distance",
    "rank_k_from_distances",
    "rank_k_accuracy",
    "cmc_map_from_distances",
    "cmc_map",
]

METRICS = ("euclidean", "cosine")
# Elements of a [queries, gallery] block handled at once; 2**23 float32 = 32 MiB.
_BLOCK_ELEMENTS = 1 << 23


class BatchSource(Protocol):
    """Anything that can hand out image batches by index (e.g. a tensor cache)."""

    def __len__(self) -> int: ...

    def batch(self, idx: Tensor) -> Tensor:
        """Return images ``[B, 3, H, W]`` for the indices ``idx`` (``[B]``, int64)."""
        ...


# --------------------------------------------------------------------------- features


def _model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter (or buffer); CPU for a model with neither."""
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _model_float_dtype(model: nn.Module) -> torch.dtype:
    """Dtype of the model's first floating-point parameter; float32 if there is none."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


OUTPUTS = ("embed", "train")


def _embed(model: nn.Module, x: Tensor, output: str = "embed") -> Tensor:
    """``output="embed"``: ``model.embed(x)`` when the model has it, else ``model(x)``;
    ``"train"``: ``model(x)``. Either way the first element when the model returns a tuple."""
    embed = getattr(model, "embed", None) if output == "embed" else None
    out = embed(x) if callable(embed) else model(x)
    if isinstance(out, (tuple, list)):
        out = out[0]
    return out


def extract_features(
    model: nn.Module,
    images: Tensor | BatchSource,
    batch_size: int = 256,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    progress: bool = False,
    flip: bool = False,
    output: str = "embed",
) -> Tensor:
    """Embed every image with ``model`` in large batches, without gradients.

    The model runs in eval mode under ``torch.inference_mode()``; every submodule's
    previous training mode is restored afterwards, also when an error is raised.

    Args:
        model: a module with ``embed(x) -> [B, D]`` (every model of this project);
            without ``embed``, ``model(x)`` is used (its first element if it returns
            a tuple).
        images: either a tensor ``[N, 3, H, W]`` of any dtype on any device (e.g. a
            float16 cache on the GPU), or an object with ``__len__`` and
            ``batch(idx: LongTensor [B]) -> Tensor [B, 3, H, W]``.
        batch_size: images per forward pass.
        device: where batches are sent; default: the device of the model's
            parameters.  The model itself is not moved.
        amp_dtype: run under ``torch.autocast`` with this dtype (e.g.
            ``torch.float16`` on CUDA, ``torch.bfloat16`` on CPU); ``None`` = off.
        progress: show a tqdm bar (written to stdout, so nbval-checked notebooks
            keep stderr clean).
        flip: each image's feature is the mean of the features of the image and of its
            left-right mirror image (test-time flip; two forward passes per image).
        output: ``"embed"``: the retrieval feature (``model.embed``); ``"train"``: forward's
            first output, the feature the training and validation losses use.

    Returns:
        Features ``[N, D]``, float32, on the CPU, in the order of ``images``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")
    run_device = torch.device(device) if device is not None else _model_device(model)
    in_dtype = _model_float_dtype(model)
    n = len(images)
    if isinstance(images, Tensor) and images.dim() != 4:
        raise ValueError(f"images: expected a tensor [N, 3, H, W], got shape {tuple(images.shape)}")
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm  # plain text bar: deterministic in notebooks, unlike widgets

        starts = tqdm(starts, desc="features", unit="batch", file=sys.stdout)

    modes = [(module, module.training) for module in model.modules()]  # restored one by one
    model.eval()
    chunks: list[Tensor] = []
    try:
        with torch.inference_mode(), torch.autocast(
            device_type=run_device.type, dtype=amp_dtype, enabled=amp_dtype is not None
        ):
            for start in starts:
                stop = min(start + batch_size, n)
                if isinstance(images, Tensor):
                    x = images[start:stop]
                else:
                    x = images.batch(torch.arange(start, stop, dtype=torch.long))
                x = x.to(device=run_device, dtype=in_dtype, non_blocking=True)
                feats = _embed(model, x, output)  # [B, D]
                if flip:
                    feats = (feats + _embed(model, x.flip(-1), output)) / 2
                chunks.append(feats.float())  # stays on the device: no sync per batch
    finally:
        for module, training in modes:
            module.training = training
    if not chunks:
        return torch.empty(0, 0)
    # cat outside inference mode gives an ordinary tensor (in-place ops allowed later)
    return torch.cat(chunks).cpu()


# --------------------------------------------------------------------------- distances


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _as_features(x: Any, name: str) -> Tensor:
    """Features as a 2-D floating tensor (integers become float32)."""
    x = torch.as_tensor(x)
    if x.dim() != 2:
        raise ValueError(f"{name}: expected features [N, D], got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.float()
    return x


def _rows_per_block(num_cols: int, limit: int | None = None) -> int:
    """Rows of a [rows, num_cols] block that keep it near _BLOCK_ELEMENTS elements."""
    rows = max(1, _BLOCK_ELEMENTS // max(1, num_cols))
    return rows if limit is None else max(1, min(rows, limit))


def pairwise_distance(
    q: Tensor,
    g: Tensor,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> Tensor:
    """Distances between every query and every gallery feature.

    ``euclidean``: true (not squared) Euclidean distance from the expansion
    ``|q|^2 + |g|^2 - 2 q.g`` (one matrix product), clamped at 0 before the square
    root.  ``cosine``: ``1 - cos(q, g)`` in ``[0, 2]``.  This is the library's only
    pairwise distance: evaluation, ranking and the losses' mining all use it.

    With gradients (autograd on and ``q`` or ``g`` requiring grad, as in a loss) the result
    is computed out of place in one block, and the Euclidean square root is taken of
    ``max(d², 1e-12)`` so its gradient stays finite where two features coincide (such a
    distance reads 1e-6 instead of 0).

    Args:
        q: query features ``[Q, D]``.
        g: gallery features ``[G, D]``, same device as ``q``.
        metric: ``"euclidean"`` or ``"cosine"``.
        chunk_size: queries per block; default: blocks of about 8M distances.

    Returns:
        Distances ``[Q, G]`` in the common floating dtype of ``q`` and ``g``.
    """
    _check_metric(metric)
    q, g = _as_features(q, "q"), _as_features(g, "g")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"feature sizes differ: queries have {q.shape[1]}, gallery {g.shape[1]}")
    dtype = torch.promote_types(q.dtype, g.dtype)
    q, g = q.to(dtype), g.to(dtype)
    if torch.is_grad_enabled() and (q.requires_grad or g.requires_grad):
        return _differentiable_distance(q, g, metric)
    if metric == "cosine":
        # Divide by the norms after the product: each distance is then the same
        # element-wise expression whatever the block size (exact for integer features).
        g_inv = 1.0 / g.norm(dim=1).clamp(min=1e-12)  # [G]
    else:
        g_sq = (g * g).sum(1)  # [G]
    out = torch.empty(q.shape[0], g.shape[0], dtype=dtype, device=q.device)  # [Q, G]
    rows = chunk_size or _rows_per_block(g.shape[0])
    g_t = g.t()
    for start in range(0, q.shape[0], rows):
        qs = q[start : start + rows]  # [C, D]
        block = out[start : start + rows]  # [C, G] view into out
        if metric == "cosine":
            q_inv = 1.0 / qs.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [C, 1]
            torch.mm(qs, g_t, out=block)
            block.mul_(q_inv).mul_(g_inv).neg_().add_(1.0)
        else:
            q_sq = (qs * qs).sum(1, keepdim=True)  # [C, 1]
            torch.addmm(q_sq + g_sq, qs, g_t, alpha=-2.0, out=block)
            block.clamp_(min=0.0).sqrt_()
    return out


def _differentiable_distance(q: Tensor, g: Tensor, metric: str) -> Tensor:
    """``pairwise_distance`` for autograd: ``[Q, D]``, ``[G, D]`` -> ``[Q, G]``, out of place."""
    if metric == "cosine":
        qn = q / q.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [Q, D]
        gn = g / g.norm(dim=1, keepdim=True).clamp(min=1e-12)  # [G, D]
        return 1.0 - qn @ gn.T
    q_sq = q.pow(2).sum(1)  # [Q]
    g_sq = q_sq if g is q else g.pow(2).sum(1)  # [G]; one graph node when x is against itself
    d2 = q_sq[:, None] + g_sq[None, :] - 2.0 * (q @ g.T)  # [Q, G]
    return d2.clamp_min(1e-12).sqrt()  # the clamp keeps sqrt's gradient finite at 0


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


def _gt_ranks(dist: Tensor, gt: Tensor) -> Tensor:
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
        ranks.append(_gt_ranks(block, gt[start : start + rows]))
    rank = torch.cat(ranks).cpu()  # [Q]
    return {k: float((rank < k).double().mean()) for k in ks}


def rank_k_accuracy(
    query_feats: Tensor,
    gallery_feats: Tensor,
    gt_index: Any,
    ks: Sequence[int] = (1, 5, 10),
    metric: str = "euclidean",
) -> dict[int, float]:
    """Rank-k accuracy of the assignment: one correct gallery image per query.

    Args:
        query_feats: ``[Q, D]`` features of the queries.
        gallery_feats: ``[G, D]`` features of the gallery.
        gt_index: ``[Q]`` integers, the correct gallery index of each query.
        ks: the k values, e.g. ``(1, 5, 10)``.
        metric: ``"euclidean"`` or ``"cosine"`` (see ``pairwise_distance``).

    Returns:
        ``{k: Rank-k}``, e.g. ``{1: 0.62, 5: 0.85, 10: 0.91}``.
    """
    dist = pairwise_distance(query_feats, gallery_feats, metric)  # [Q, G]
    return rank_k_from_distances(dist, gt_index, ks)


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


def cmc_map(
    q_feats: Tensor,
    g_feats: Tensor,
    q_ids: Any,
    g_ids: Any,
    q_cams: Any = None,
    g_cams: Any = None,
    max_rank: int = 50,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> dict[str, Any]:
    """CMC curve, mAP and mINP of the standard ReID protocol (Market-1501).

    Every gallery image with the query's identity is a positive.  When cameras are
    given, gallery images with the query's identity AND camera are left out
    entirely (neither positive nor negative), as in Market-1501 (Zheng et al.,
    2015).  Queries without any valid positive are skipped and not counted.
    Equal distances are ranked by gallery index (see the module docstring).

    * CMC at rank r (``cmc[r - 1]``): share of queries whose first valid positive
      is among the r nearest valid gallery items.
    * AP of a query: mean over its positives of the precision at each positive,
      (positives up to and including it) / (its 1-based rank); mAP = mean AP.
    * INP of a query (Ye et al., 2021): number of positives / 1-based rank of the
      hardest (last-ranked) positive; mINP = mean INP.

    Runs on the CPU in blocks of queries, with no Python loop over queries and
    without sorting gallery rows: each negative is placed among the query's few
    sorted positives (see the comment above ``_DENSE_SHARE``).  Only items no
    farther than a query's hardest positive are looked at when they are few, so
    the cost falls as the model gets better.  A Market-sized problem
    (3,368 x 15,913) needs a few hundred MB.

    Args:
        q_feats: ``[Q, D]`` query features.
        g_feats: ``[G, D]`` gallery features.
        q_ids, g_ids: ``[Q]`` and ``[G]`` integer identities.
        q_cams, g_cams: ``[Q]`` and ``[G]`` integer cameras, or both None (then no
            gallery image is left out).
        max_rank: length of the CMC curve.
        metric: ``"euclidean"`` or ``"cosine"``; distances are float32.
        chunk_size: queries per block; results do not depend on it.

    Returns:
        ``{"cmc": Tensor [max_rank] float64, "mAP": float, "mINP": float,
        "num_valid": int}``; ``cmc[0]`` is Rank-1.  The curve has ``max_rank``
        entries even when fewer gallery items remain (it is 1.0 from there on).

    Raises:
        ValueError: on mismatched shapes, non-finite distances, or when no query
            has a valid positive.
    """
    _check_metric(metric)
    q_feats = _as_features(q_feats, "q_feats").float()
    g_feats = _as_features(g_feats, "g_feats").float()
    if q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(
            f"feature sizes differ: queries have {q_feats.shape[1]}, gallery {g_feats.shape[1]}"
        )
    if g_feats.shape[0] == 0:
        raise ValueError("gallery is empty")
    return _cmc_over_blocks(
        lambda sl: pairwise_distance(q_feats[sl], g_feats, metric).cpu(),
        q_feats.shape[0], g_feats.shape[0], q_ids, g_ids, q_cams, g_cams, max_rank, chunk_size,
    )


# --------------------------------------------------------------------------- one retrieval
#
# One vocabulary for the assignment's retrieval metrics, everywhere in code:
RETRIEVAL_METRICS = ("rank1", "rank5", "rank10", "mAP", "mINP")


@dataclass(eq=False)
class Retrieval:
    """Queries against a gallery, measured once: features, the distance matrix, ground truth.

    Made by :func:`retrieve` (features extracted once) or :meth:`from_features`; the
    distances ``dist`` ``[Q, G]`` are computed once, in ``__post_init__``, and every
    metric, ranking and figure reads them.

    Attributes:
        query: query features ``[Q, D]`` float32 (CPU).
        gallery: gallery features ``[G, D]`` float32 (CPU).
        gt: ``[Q]`` int64, the gallery index of each query's match (``UNKNOWN_GT`` = -1 on
            the test split); gallery image k has identity k.
        metric: ``"euclidean"`` or ``"cosine"``.
        flip: whether the features average each image with its mirror image (how they were
            measured; recorded so a report can tell, and reuse, the same measurement).
        dist: ``[Q, G]`` distances, filled in from the features.
    """

    query: Tensor
    gallery: Tensor
    gt: Tensor
    metric: str = "euclidean"
    flip: bool = False
    dist: Tensor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.gt = torch.as_tensor(self.gt).cpu()
        self.dist = pairwise_distance(self.query, self.gallery, self.metric)  # [Q, G]

    @classmethod
    def from_features(cls, query: Tensor, gallery: Tensor, gt: Any, metric: str = "euclidean",
                      flip: bool = False) -> "Retrieval":
        """A Retrieval from features already computed (``[Q, D]``, ``[G, D]``, gt ``[Q]``)."""
        return cls(query, gallery, torch.as_tensor(gt), metric, flip)

    def metrics(self) -> dict[str, float]:
        """``{"rank1", "rank5", "rank10", "mAP", "mINP"}`` as fractions in [0, 1].

        Rank-k: the assignment's protocol (one correct gallery image per query, see
        :func:`rank_k_from_distances`); mAP / mINP: :func:`cmc_map_from_distances` with query
        identity = its gt gallery index and gallery identity = position, no cameras.
        Raises ValueError when the ground truth is unknown (the test split).
        """
        if bool((self.gt < 0).any()):
            raise ValueError("this retrieval has no ground truth (test split): metrics need val/gt.csv's")
        ranks = rank_k_from_distances(self.dist, self.gt, ks=(1, 5, 10))
        cm = cmc_map_from_distances(self.dist, self.gt, torch.arange(self.dist.shape[1]))
        return {"rank1": ranks[1], "rank5": ranks[5], "rank10": ranks[10],
                "mAP": float(cm["mAP"]), "mINP": float(cm["mINP"])}

    def ranked(self, topk: int = 10) -> Tensor:
        """``[Q, topk]`` gallery indices, nearest first (a stable sort: ties to the lower index)."""
        return torch.sort(self.dist, dim=1, stable=True).indices[:, :topk]


def retrieve(model: nn.Module, dataset: Any, flip: bool = False, metric: str = "euclidean",
             batch_size: int = 256, device: Any = None, amp_dtype: torch.dtype | None = None) -> Retrieval:
    """Extract the query and gallery features of ``dataset`` once and measure their distances.

    Args:
        model: any model of this project (its ``embed`` gives the retrieval feature).
        dataset: a RetrievalDataset (``queries`` and ``gallery`` image sources, ``gt`` ``[Q]``).
        flip: average each image's feature with its mirror image's (see extract_features).
        metric: ``"euclidean"`` or ``"cosine"``.
        batch_size, device, amp_dtype: as in :func:`extract_features`.

    Returns:
        A :class:`Retrieval` (``.metrics()``, ``.ranked(k)``, ``.dist`` ``[Q, G]``).
    """
    _check_metric(metric)
    kw = dict(batch_size=batch_size, device=device, amp_dtype=amp_dtype, flip=flip)
    q = extract_features(model, dataset.queries, **kw)  # [Q, D]
    g = extract_features(model, dataset.gallery, **kw)  # [G, D]
    return Retrieval(q, g, dataset.gt, metric, flip)
