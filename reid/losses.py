"""Losses: the ID loss, the handout's triplet loss, and triplet losses with partners mined in a batch.

Map (handout words → code):
  * ID loss (C7 head) ........... id_loss: cross-entropy over the training identities
  * triplet loss (C8) ........... handout_triplet_loss: nn.TripletMarginLoss(margin=HANDOUT_MARGIN)
                                  on the listed (anchor, positive, negative) rows
  * triplets mined in a batch ... mined_triplet_loss (hardest negative, optionally hardest
                                  positive), batch_all_triplet_loss, batch_hard_triplet_loss
  * random triplets ............. random_triplets: one (anchor, positive, negative) per image,
                                  used for the fixed validation triplets

Every distance matrix comes from :func:`reid.distance.pairwise_distance` (with gradients where
the loss needs them); the per-triplet distances of the handout's loss are nn.TripletMarginLoss's own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .distance import pairwise_distance

__all__ = ["HANDOUT_MARGIN", "id_loss", "handout_triplet_loss", "batch_hard_triplet_loss",
           "mined_triplet_loss", "batch_all_triplet_loss", "random_triplets"]

# The handout's triplet loss acts on the 256-d feature that comes out of BN → ReLU →
# Dropout, so it is non-negative and, at initialisation, each coordinate is roughly
# max(0, z) with z ~ N(0, 1): two unrelated images are about
# sqrt(2 · 256 · (1/2 − 1/(2π))) ≈ 13 apart (Euclidean). Distances scale with the
# feature norm (BN's γ can grow), so any margin is relative; 1.0 (≈ 8 % of that typical
# distance, PyTorch's default) asks for a clear gap without forcing the net to inflate
# the feature scale to satisfy it. The validation loss uses the same margin.
HANDOUT_MARGIN = 1.0


def id_loss(logits: Tensor, ids: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy over the training identities. logits [N, C] float, ids [N] long."""
    return F.cross_entropy(logits.float(), ids, label_smoothing=label_smoothing)


def handout_triplet_loss(a: Tensor, p: Tensor, n: Tensor, margin: float = HANDOUT_MARGIN,
                         reduction: str = "mean") -> Tensor:
    """The handout's ``nn.TripletMarginLoss`` (Euclidean) on features [N, D] of a, p, n, in float32:
    max(0, d(a, p) − d(a, n) + margin), averaged (``reduction="none"``: each triplet's, ``[N]``)."""
    return F.triplet_margin_loss(a.float(), p.float(), n.float(), margin=margin, reduction=reduction)


def batch_hard_triplet_loss(feats: Tensor, ids: Tensor, margin: float) -> Tensor:
    """Batch-hard triplet loss (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss").

    For every anchor i: the farthest same-id sample and the nearest other-id sample in the
    batch; loss = mean_i max(0, d(i, hardest pos) − d(i, hardest neg) + margin).
    feats [N, D] (computed in fp32), ids [N]. An anchor with no other-id sample in the
    batch contributes 0; one with no other same-id sample uses itself (distance ~0).
    """
    feats = feats.float()
    dist = pairwise_distance(feats, feats)  # [N, N], differentiable
    same = ids[:, None] == ids[None, :]  # [N, N] bool
    hardest_pos = dist.masked_fill(~same, float("-inf")).amax(dim=1)  # [N]
    hardest_neg = dist.masked_fill(same, float("inf")).amin(dim=1)  # [N]
    return F.relu(hardest_pos - hardest_neg + margin).mean()


def mined_triplet_loss(feats: Tensor, ids: Tensor, margin: float, hardest_positive: bool = False) -> Tensor:
    """TripletMarginLoss on the listed anchors of a batch of triplets, partners mined in the batch.

    feats [3B, D] and ids [3B] hold a batch of listed triplets as [anchors; positives;
    negatives]. Each anchor's negative is the nearest of the 3B images with another identity
    (at least as hard as its listed negative, which is among them). Its positive is its listed
    one, or with ``hardest_positive`` the farthest of the 3B images of its identity (at least as
    hard as the listed one). Mining happens without gradients; the loss is then the handout's
    ``nn.TripletMarginLoss`` on (anchor, positive, negative) features.
    """
    feats = feats.float()
    b = len(feats) // 3
    anchors = feats[:b]  # [B, D]
    with torch.no_grad():
        dist = pairwise_distance(anchors, feats)  # [B, 3B]
        same = ids[:b, None] == ids[None, :]  # [B, 3B]
        negative = dist.masked_fill(same, float("inf")).argmin(dim=1)  # [B]
        if hardest_positive:
            positive = dist.masked_fill(~same, float("-inf")).argmax(dim=1)  # [B]
        else:
            positive = torch.arange(b, 2 * b, device=feats.device)  # the listed ones
    return handout_triplet_loss(anchors, feats[positive], feats[negative], margin)


def batch_all_triplet_loss(feats: Tensor, ids: Tensor, margin: float) -> Tensor:
    """TripletMarginLoss over every valid triplet of a batch of listed triplets, averaged over
    the triplets that violate the margin ("batch all ≠ 0", Hermans et al. 2017).

    feats [3B, D] and ids [3B] hold a batch of listed triplets as [anchors; positives;
    negatives]. Each listed anchor forms a triplet with every other position of its identity
    in the batch (a file that stands twice, as one row's anchor and another row's positive, is
    two positions) and every position of another identity. Zero when no triplet violates the
    margin. All triplets at once as a masked [B, 3B, 3B] tensor: no host sync.
    """
    feats = feats.float()
    b = len(feats) // 3
    anchors = feats[:b]  # [B, D]
    # nn.TripletMarginLoss's own distance, ||a − x + eps||, from every anchor to every position
    d = F.pairwise_distance(anchors[:, None, :], feats[None, :, :], eps=1e-6)  # [B, 3B]
    same = ids[:b, None] == ids[None, :]  # [B, 3B]
    not_self = torch.arange(len(feats), device=feats.device)[None, :] != torch.arange(b, device=feats.device)[:, None]
    valid = (same & not_self)[:, :, None] & ~same[:, None, :]  # [B, 3B (positive), 3B (negative)]
    losses = F.relu(d[:, :, None] - d[:, None, :] + margin) * valid  # [B, 3B, 3B]
    active = (losses > 0).sum()
    return losses.sum() / active.clamp(min=1)


def random_triplets(ids: Tensor, generator: torch.Generator) -> Tensor:
    """One triplet per image [T, 3] (anchor, positive, negative indices into ``ids``).

    Positive: a random other image of the anchor's id; negative: a random image of another
    id. Anchors whose id has a single image are skipped.
    """
    rows = []
    for a in range(len(ids)):
        pos = torch.nonzero((ids == ids[a]) & (torch.arange(len(ids)) != a)).flatten()
        neg = torch.nonzero(ids != ids[a]).flatten()
        if len(pos) == 0 or len(neg) == 0:
            continue
        p = pos[torch.randint(len(pos), (1,), generator=generator)].item()
        n = neg[torch.randint(len(neg), (1,), generator=generator)].item()
        rows.append((a, p, n))
    return torch.tensor(rows, dtype=torch.long).reshape(-1, 3)
