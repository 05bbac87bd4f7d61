"""Evaluation: features once per model and view, distances once, every metric from them.

The path: ``extract_features`` (``[N, D]``) → ``pairwise_distance`` (``[Q, G]``) → metrics.
``retrieve(model, dataset)`` runs it for a retrieval set and returns a :class:`Retrieval`
(features, distances, ground truth) whose ``metrics()`` gives ``rank1``, ``rank5``,
``rank10``, ``mAP`` and ``mINP`` and whose ``ranked(k)`` gives each query's nearest gallery
images; reports, figures and predictions read that object instead of re-measuring.

Rank-k and CMC / mAP / mINP themselves (from distances) are in ``reid/metrics.py``; the
functions here that take features (``rank_k_accuracy``, ``cmc_map``) measure the
distances with ``pairwise_distance`` and hand them over.  See reid/metrics.py for the two
protocols and the tie rule (equal distances rank by gallery index, lower first).
"""

from __future__ import annotations

import copy

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .distance import METRICS, _as_features, _check_metric, pairwise_distance  # noqa: F401 (re-exported)
from .metrics import _cmc_over_blocks, cmc_map_from_distances, gt_ranks, rank_k_from_distances
from .rerank import rerank_from_features

__all__ = [
    "BatchSource",
    "ConcatSource",
    "MirroredSource",
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



class BatchSource(Protocol):
    """Anything that can hand out image batches by index (e.g. a tensor cache)."""

    def __len__(self) -> int: ...

    def batch(self, idx: Tensor) -> Tensor:
        """Return images ``[B, 3, H, W]`` for the indices ``idx`` (``[B]``, int64)."""
        ...


class ConcatSource:
    """Image sources with ``len`` and ``batch(idx)`` (e.g. ImageCache) one after another, as one
    source: global row ``r`` is row ``r - start`` of the source it falls in."""

    def __init__(self, *sources: Any) -> None:
        self.sources = sources
        self.starts = [0]
        for s in sources:
            self.starts.append(self.starts[-1] + len(s))

    def __len__(self) -> int:
        return self.starts[-1]

    def batch(self, idx: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` at global rows ``idx`` ``[B]`` (int64), in ``idx``'s order, on the CPU."""
        idx = idx.cpu()
        out: Tensor | None = None
        for source, lo, hi in zip(self.sources, self.starts, self.starts[1:]):
            mine = (idx >= lo) & (idx < hi)  # [B]
            if bool(mine.any()):
                images = source.batch(idx[mine] - lo).cpu()  # [b, 3, H, W]
                if out is None:
                    out = images.new_empty((len(idx), *images.shape[1:]))
                out[mine] = images
        if out is None:
            raise IndexError(f"rows {idx.tolist()} are outside [0, {len(self)})")
        return out


class MirroredSource:
    """An image source whose images come out mirrored left-right."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def __len__(self) -> int:
        return len(self.source)

    def batch(self, idx: Tensor) -> Tensor:
        """The images at ``idx`` ``[B]``, mirrored: ``[B, 3, H, W]``."""
        return self.source.batch(idx).flip(-1)


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


# --------------------------------------------------------------------------- metrics from features


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
    reranked: bool = field(default=False, init=False)

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

    def match_ranks(self) -> Tensor:
        """``[Q]`` int64: the 1-based rank of each query's correct gallery image (ties to the lower
        gallery index, as Rank-k counts them): Rank-k is the share of queries with a rank ≤ k."""
        if bool((self.gt < 0).any()):
            raise ValueError("this retrieval has no ground truth (test split): ranks need val/gt.csv's")
        return gt_ranks(self.dist, self.gt.to(self.dist.device)).cpu() + 1

    def ranked(self, topk: int = 10) -> Tensor:
        """``[Q, topk]`` gallery indices, nearest first (a stable sort: ties to the lower index)."""
        return torch.sort(self.dist, dim=1, stable=True).indices[:, :topk]

    def rerank(self, k1: int = 20, k2: int = 6, lambda_value: float = 0.3) -> "Retrieval":
        """The same features with k-reciprocal re-ranked distances (Zhong et al., CVPR 2017;
        :func:`reid.rerank.rerank_from_features`, in this Retrieval's metric: 1 − cos for
        "cosine"). Transductive: every query's distances depend on all the queries at once."""
        out = copy.copy(self)
        out.dist = rerank_from_features(self.query, self.gallery, self.metric, k1=k1, k2=k2,
                                        lambda_value=lambda_value).cpu()  # [Q, G]
        out.reranked = True
        return out


def retrieve(model: nn.Module, dataset: Any, flip: bool = False, metric: str = "euclidean",
             batch_size: int = 256, device: Any = None, amp_dtype: torch.dtype | None = None,
             rerank: bool = False) -> Retrieval:
    """Extract the query and gallery features of ``dataset`` once and measure their distances.

    Args:
        model: any model of this project (its ``embed`` gives the retrieval feature).
        dataset: a RetrievalDataset (``queries`` and ``gallery`` image sources, ``gt`` ``[Q]``).
        flip: average each image's feature with its mirror image's (see extract_features).
        metric: ``"euclidean"`` or ``"cosine"``.
        batch_size, device, amp_dtype: as in :func:`extract_features`.
        rerank: k-reciprocal re-ranking of the distances (:meth:`Retrieval.rerank`, defaults).

    Returns:
        A :class:`Retrieval` (``.metrics()``, ``.ranked(k)``, ``.dist`` ``[Q, G]``).
    """
    _check_metric(metric)
    kw = dict(batch_size=batch_size, device=device, amp_dtype=amp_dtype, flip=flip)
    q = extract_features(model, dataset.queries, **kw)  # [Q, D]
    g = extract_features(model, dataset.gallery, **kw)  # [G, D]
    retrieval = Retrieval(q, g, dataset.gt, metric, flip)
    return retrieval.rerank() if rerank else retrieval
