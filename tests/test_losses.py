"""Tests of reid/losses.py: batch-hard, mined and batch-all triplet losses by hand and against loops."""
from __future__ import annotations

import pytest
import torch

from torch import nn

from reid import losses as LS
from reid.evaluate import pairwise_distance
from reid.losses import batch_hard_triplet_loss


def batch_hard_loop(feats: torch.Tensor, ids: torch.Tensor, margin: float) -> torch.Tensor:
    total = 0.0
    for i in range(len(feats)):
        pos = [torch.dist(feats[i], feats[j]) for j in range(len(feats)) if ids[j] == ids[i]]
        neg = [torch.dist(feats[i], feats[j]) for j in range(len(feats)) if ids[j] != ids[i]]
        total += max(0.0, float(max(pos) - min(neg)) + margin)
    return torch.tensor(total / len(feats))


def test_batch_hard_matches_loop():
    g = torch.Generator().manual_seed(0)
    feats = torch.rand(12, 5, generator=g)
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    for margin in (0.0, 0.3, 1.0):
        assert batch_hard_triplet_loss(feats, ids, margin).item() == pytest.approx(
            batch_hard_loop(feats, ids, margin).item(), abs=1e-5)


def test_batch_hard_by_hand_and_finite_gradient():
    # 1-d features: id 0 at 0 and 1, id 1 at 3. Anchor 0: pos 1, neg 3 -> max(0, 1-3+m).
    feats = torch.tensor([[0.0], [1.0], [3.0], [3.0]], requires_grad=True)
    ids = torch.tensor([0, 0, 1, 1])
    # anchors: 0 -> 1-3, 1 -> 1-2, 2 -> 0-2, 3 -> 0-2; margin 1.5 -> 0, .5, 0, 0
    loss = batch_hard_triplet_loss(feats, ids, margin=1.5)
    assert loss.item() == pytest.approx(0.5 / 4, abs=1e-5)
    loss.backward()  # identical features (distance 0) must not give NaN gradients
    assert torch.isfinite(feats.grad).all()


def test_handout_triplet_loss_is_torch_triplet_margin_loss():
    a, p, n = torch.rand(3, 6, 4).unbind(0)
    ref = nn.TripletMarginLoss(margin=LS.HANDOUT_MARGIN)(a, p, n)
    assert LS.handout_triplet_loss(a, p, n).item() == pytest.approx(ref.item(), abs=1e-6)


def test_mined_negatives_by_hand():
    # 1-d features, B = 2 listed triplets as [anchors; positives; negatives]:
    # anchors 0 (id 0), 10 (id 1); positives 1 (id 0), 10.5 (id 1); negatives 20 (id 2), 9 (id 3).
    feats = torch.tensor([[0.0], [10.0], [1.0], [10.5], [20.0], [9.0]], requires_grad=True)
    ids = torch.tensor([0, 1, 0, 1, 2, 3])
    # anchor 0: other ids at 10, 10.5, 20, 9 -> nearest 9: max(0, 1 - 9 + 10) = 2
    # anchor 10: other ids at 0, 1, 20, 9 -> nearest 9: max(0, 0.5 - 1 + 10) = 9.5
    loss = LS.mined_triplet_loss(feats, ids, margin=10.0)
    assert loss.item() == pytest.approx((2 + 9.5) / 2, abs=1e-4)
    # the listed negatives: anchor 0 -> 20 gives 0; anchor 10 -> 9 gives 9.5
    listed = LS.handout_triplet_loss(feats[:2], feats[2:4], feats[4:], margin=10.0)
    assert listed.item() == pytest.approx(9.5 / 2, abs=1e-4)
    loss.backward()
    grad = feats.grad[:, 0]
    assert torch.isfinite(grad).all() and grad[1].item() == pytest.approx(-1.0, abs=1e-4)  # (-1 - 1) / 2
    assert grad[4].item() == 0  # the listed negative at 20 is nobody's nearest: it gets no gradient


def test_mined_hardest_positives_by_hand():
    # 1-d features, B = 2 listed triplets [anchors; positives; negatives] with ids
    # anchors 0 (id 0), 10 (id 1); positives 1 (id 0), 10.5 (id 1); negatives 4 (id 0), 9 (id 3).
    # The listed negative 4 of anchor 10 shares anchor 0's identity: it is anchor 0's farthest
    # positive (4 > 1) and, for anchor 10, an other-id image at distance 6.
    feats = torch.tensor([[0.0], [10.0], [1.0], [10.5], [4.0], [9.0]], requires_grad=True)
    ids = torch.tensor([0, 1, 0, 1, 0, 3])
    # anchor 0: hardest positive 4, nearest negative 9 -> max(0, 4 - 9 + 10) = 5
    # anchor 10: hardest positive 10.5 (0.5 away), nearest negative 9 -> max(0, 0.5 - 1 + 10) = 9.5
    loss = LS.mined_triplet_loss(feats, ids, margin=10.0, hardest_positive=True)
    assert loss.item() == pytest.approx((5 + 9.5) / 2, abs=1e-4)
    # listed positives: anchor 0 -> 1 gives max(0, 1 - 9 + 10) = 2
    assert LS.mined_triplet_loss(feats, ids, margin=10.0).item() == pytest.approx((2 + 9.5) / 2, abs=1e-4)
    loss.backward()
    assert feats.grad[2, 0].item() == 0  # anchor 0's listed positive (1) was not its hardest: no gradient
    assert feats.grad[4, 0].item() == pytest.approx(0.5, abs=1e-4)  # d(d(0, 4))/dx / 2: descent pulls 4 in


def test_batch_all_by_hand_and_against_a_loop():
    # 1-d, B = 1 listed triplet [anchor 0 (id 0); positive 1 (id 0); negative 3 (id 1)], margin 2:
    # one triplet: max(0, 1 - 3 + 2) = 0 -> nothing violates, the loss is 0 (with a gradient path)
    feats = torch.tensor([[0.0], [1.0], [3.0]], requires_grad=True)
    loss = LS.batch_all_triplet_loss(feats, torch.tensor([0, 0, 1]), margin=2.0)
    assert loss.item() == 0 and loss.requires_grad
    # margin 3: 1 - 3 + 3 = 1
    assert LS.batch_all_triplet_loss(feats, torch.tensor([0, 0, 1]), margin=3.0).item() == pytest.approx(1.0)
    # A random batch of 3 listed triplets: the mean of nn.TripletMarginLoss over the violating
    # (listed anchor, other same-id image, other-id image) triplets, by a plain loop.
    torch.manual_seed(0)
    feats, ids = torch.randn(9, 4), torch.tensor([0, 1, 2, 0, 1, 2, 1, 0, 3])
    ref = nn.TripletMarginLoss(margin=1.0)
    values = [ref(feats[a:a + 1], feats[p:p + 1], feats[n:n + 1]).item()
              for a in range(3) for p in range(9) for n in range(9)
              if p != a and ids[p] == ids[a] and ids[n] != ids[a]]
    active = [v for v in values if v > 0]
    assert len(values) == 31 and 0 < len(active) < 31  # some triplets are easy, some are not
    assert LS.batch_all_triplet_loss(feats, ids, 1.0).item() == pytest.approx(sum(active) / len(active), abs=1e-5)


def test_losses_measure_with_the_one_pairwise_distance(monkeypatch):
    """batch-hard and mined losses take their distance matrices from evaluate.pairwise_distance."""
    calls = []
    monkeypatch.setattr(LS, "pairwise_distance", lambda *a, **k: calls.append(a[0].shape) or pairwise_distance(*a, **k))
    feats = torch.rand(6, 3, generator=torch.Generator().manual_seed(1))
    ids = torch.tensor([0, 0, 1, 1, 2, 2])
    LS.batch_hard_triplet_loss(feats, ids, 0.3)
    LS.mined_triplet_loss(feats, ids, 0.3)
    assert calls == [(6, 3), (2, 3)]  # [N, N] for batch-hard, [B, 3B] anchors against the batch


def test_mined_negatives_match_torch_cdist():
    feats = torch.rand(9, 4, generator=torch.Generator().manual_seed(2))
    ids = torch.tensor([0, 1, 2, 0, 1, 2, 1, 2, 0])
    dist = torch.cdist(feats[:3], feats)
    neg = dist.masked_fill(ids[:3, None] == ids[None, :], float("inf")).argmin(1)
    ref = LS.handout_triplet_loss(feats[:3], feats[3:6], feats[neg], 0.5)
    assert LS.mined_triplet_loss(feats, ids, 0.5).item() == pytest.approx(ref.item(), abs=1e-6)
