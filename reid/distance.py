"""The library's one pairwise distance: Euclidean or cosine, between two sets of features.

Evaluation (``reid.evaluate``), the losses' mining (``reid.losses``) and re-ranking
(``reid.rerank``) all measure distances here; it sits below them so that none of them has to
import another for it.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .metrics import _rows_per_block

METRICS = ("euclidean", "cosine")


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
