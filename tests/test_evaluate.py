"""Tests for reid/evaluate.py and reid/metrics.py: hand-checked examples, then agreement with plain loops.

The plain per-query loops live in reid/reference/evaluation.py (the benchmark times them).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from reid.reference.evaluation import reference_cmc_map, reference_rank_k
from reid import evaluate, metrics
from reid.evaluate import (
    cmc_map,
    cmc_map_from_distances,
    extract_features,
    pairwise_distance,
    rank_k_accuracy,
    rank_k_from_distances,
)

# --------------------------------------------------------------------------- distances


def test_pairwise_distance_by_hand() -> None:
    q = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]])
    # Euclidean: |(0,0)-(3,4)| = 5, 0, 1 ; |(1,0)-(3,4)| = sqrt(4+16), 1, 2
    expected = torch.tensor([[5.0, 0.0, 1.0], [math.sqrt(20.0), 1.0, 2.0]])
    assert torch.allclose(pairwise_distance(q, g), expected, atol=1e-6)
    # cosine: (1,0) vs (3,4): 1 - 3/5 = 0.4 ; vs (-1,0): 1 - (-1) = 2
    cos = pairwise_distance(q[1:], g[[0, 2]], metric="cosine")
    assert torch.allclose(cos, torch.tensor([[0.4, 2.0]]), atol=1e-6)


def test_pairwise_distance_matches_torch_and_chunks() -> None:
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(37, 8, generator=gen, dtype=torch.float64)
    g = torch.randn(53, 8, generator=gen, dtype=torch.float64)
    euc = pairwise_distance(q, g)
    assert euc.shape == (37, 53) and euc.dtype == torch.float64
    assert torch.allclose(euc, torch.cdist(q, g), atol=1e-9)
    cos = pairwise_distance(q, g, metric="cosine")
    ref = 1 - nn.functional.cosine_similarity(q[:, None, :], g[None, :, :], dim=2)
    assert torch.allclose(cos, ref, atol=1e-9)
    # integer features: every distance is the same expression whatever the block size
    qi, gi = torch.randint(-3, 4, (37, 5), generator=gen), torch.randint(-3, 4, (53, 5), generator=gen)
    for metric in ("euclidean", "cosine"):
        assert torch.equal(pairwise_distance(qi, gi, metric, chunk_size=4), pairwise_distance(qi, gi, metric))
    with pytest.raises(ValueError, match="metric"):
        pairwise_distance(q, g, metric="manhattan")
    with pytest.raises(ValueError, match="feature sizes"):
        pairwise_distance(q, g[:, :3])


# --------------------------------------------------------------------------- Rank-k by hand


def test_rank_k_by_hand_with_ties() -> None:
    dist = torch.tensor([
        [0.5, 0.1, 0.3, 0.9, 0.3],  # correct = 2 (0.3): 1 closer (0.1); tie at index 4 comes after -> rank 1
        [0.2, 0.2, 0.8, 0.1, 0.4],  # correct = 1 (0.2): 1 closer (0.1); tie at index 0 comes before -> rank 2
    ])
    gt = torch.tensor([2, 1])
    # Rank-1: nobody; Rank-2: query 0 only; Rank-3 and Rank-5: both
    assert rank_k_from_distances(dist, gt, ks=(1, 2, 3, 5)) == {1: 0.0, 2: 0.5, 3: 1.0, 5: 1.0}
    ref = reference_rank_k(dist.numpy(), gt.numpy(), ks=(1, 2, 3, 5))
    assert ref == {1: 0.0, 2: 0.5, 3: 1.0, 5: 1.0}


def test_rank_k_accuracy_from_features_by_hand() -> None:
    gallery = torch.tensor([[0.0], [10.0], [20.0]])
    queries = torch.tensor([[1.0], [18.0], [9.0]])
    # nearest gallery items: q0 -> 0, q1 -> 2 then 1, q2 -> 1 then 0
    gt = [0, 1, 0]  # q0 hit at 1; q1's item is 2nd; q2's item is 2nd
    assert rank_k_accuracy(queries, gallery, gt, ks=(1, 2, 3)) == {1: 1 / 3, 2: 1.0, 3: 1.0}


def test_rank_k_rejects_bad_gt_naming_the_row() -> None:
    dist = torch.rand(4, 5)
    with pytest.raises(ValueError, match=r"row 2 .*is 5; expected a gallery index in \[0, 5\)"):
        rank_k_from_distances(dist, torch.tensor([0, 1, 5, 2]))
    with pytest.raises(ValueError, match="row 0"):
        rank_k_from_distances(dist, [-1, 0, 0, 0])
    with pytest.raises(ValueError, match=r"shape \[4\]"):
        rank_k_from_distances(dist, [0, 1])
    with pytest.raises(ValueError, match="ks"):
        rank_k_from_distances(dist, [0, 1, 2, 3], ks=(0, 1))
    bad = dist.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="row 3"):
        rank_k_from_distances(bad, [0, 1, 2, 3])


# --------------------------------------------------------------------------- CMC / mAP / mINP by hand

# Gallery of 6 images:        index: 0    1    2    3    4    5
HAND_G_IDS = torch.tensor([1, 2, 1, 1, 3, 2])
HAND_G_CAMS = torch.tensor([0, 0, 1, 2, 1, 1])
HAND_Q_IDS = torch.tensor([1, 2, 3])
HAND_Q_CAMS = torch.tensor([0, 1, 1])
HAND_DIST = torch.tensor([
    [0.1, 0.2, 0.4, 0.15, 0.4, 0.6],  # query A: id 1, camera 0
    [0.3, 0.3, 0.5, 0.7, 0.1, 0.2],  # query B: id 2, camera 1
    [0.5, 0.4, 0.3, 0.2, 0.6, 0.1],  # query C: id 3, camera 1
])


def test_cmc_map_by_hand_with_camera_rule() -> None:
    # A (id 1, cam 0): index 0 is id 1 in cam 0 -> left out.  Positives 3 (0.15), 2 (0.4).
    #   order: 3+ (0.15), 1 (0.2), 2+ (0.4; ties with 4, lower index first), 4 (0.4), 5
    #   positives at ranks 1 and 3: AP = (1/1 + 2/3) / 2 = 5/6, INP = 2/3, Rank-1 hit.
    # B (id 2, cam 1): index 5 is id 2 in cam 1 -> left out.  Positive 1 (0.3).
    #   order: 4 (0.1), 0 (0.3; ties with 1, lower index first), 1+ (0.3), 2, 3
    #   positive at rank 3: AP = 1/3, INP = 1/3, first hit at Rank-3.
    # C (id 3, cam 1): its only id-3 image (index 4) is in cam 1 -> no valid positive, skipped.
    out = cmc_map_from_distances(HAND_DIST, HAND_Q_IDS, HAND_G_IDS, HAND_Q_CAMS, HAND_G_CAMS, max_rank=5)
    assert out["num_valid"] == 2
    assert out["cmc"].tolist() == [0.5, 0.5, 1.0, 1.0, 1.0]
    assert out["mAP"] == pytest.approx((5 / 6 + 1 / 3) / 2)  # 7/12
    assert out["mINP"] == pytest.approx((2 / 3 + 1 / 3) / 2)  # 1/2


def test_cmc_map_by_hand_without_cameras() -> None:
    # Without cameras nothing is left out.
    # A: positives 0 (0.1), 3 (0.15), 2 (0.4): order 0+ 3+ 1 2+ 4 5 -> ranks 1, 2, 4
    #    AP = (1 + 1 + 3/4) / 3 = 11/12, INP = 3/4
    # B: positives 5 (0.2), 1 (0.3): order 4 5+ 0 1+ 2 3 -> ranks 2, 4: AP = (1/2 + 2/4)/2 = 1/2, INP = 1/2
    # C: positive 4 (0.6) is the farthest: rank 6, AP = INP = 1/6
    out = cmc_map_from_distances(HAND_DIST, HAND_Q_IDS, HAND_G_IDS, max_rank=6)
    assert out["num_valid"] == 3
    assert torch.allclose(out["cmc"], torch.tensor([1, 2, 2, 2, 2, 3], dtype=torch.float64) / 3)
    assert out["mAP"] == pytest.approx((11 / 12 + 1 / 2 + 1 / 6) / 3)  # 19/36
    assert out["mINP"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 6) / 3)  # 17/36


def test_cmc_map_hand_example_matches_reference_loop() -> None:
    for cams in ((HAND_Q_CAMS, HAND_G_CAMS), (None, None)):
        ours = cmc_map_from_distances(HAND_DIST, HAND_Q_IDS, HAND_G_IDS, *cams, max_rank=6)
        ref = reference_cmc_map(HAND_DIST.numpy(), HAND_Q_IDS.numpy(), HAND_G_IDS.numpy(),
                                *(None if c is None else c.numpy() for c in cams), max_rank=6)
        assert np.allclose(ours["cmc"].numpy(), ref["cmc"], atol=1e-12)
        assert ours["mAP"] == pytest.approx(ref["mAP"], abs=1e-12)
        assert ours["mINP"] == pytest.approx(ref["mINP"], abs=1e-12)


def test_cmc_map_errors() -> None:
    with pytest.raises(ValueError, match="no query has a valid positive"):
        cmc_map_from_distances(HAND_DIST[2:], HAND_Q_IDS[2:], HAND_G_IDS, HAND_Q_CAMS[2:], HAND_G_CAMS)
    with pytest.raises(ValueError, match="both"):
        cmc_map_from_distances(HAND_DIST, HAND_Q_IDS, HAND_G_IDS, HAND_Q_CAMS, None)
    with pytest.raises(ValueError, match=r"g_ids: expected shape \[6\]"):
        cmc_map_from_distances(HAND_DIST, HAND_Q_IDS, HAND_G_IDS[:5])
    bad = HAND_DIST.clone()
    bad[1, 2] = float("inf")
    with pytest.raises(ValueError, match="row 1"):
        cmc_map_from_distances(bad, HAND_Q_IDS, HAND_G_IDS)


# --------------------------------------------------------------------------- agreement with plain loops


def _random_problem(seed: int, num_q: int, num_g: int, num_ids: int, integer: bool):
    """Features with many exact ties (small integers) or continuous noise, ids and cameras."""
    gen = torch.Generator().manual_seed(seed)
    if integer:
        qf = torch.randint(-2, 3, (num_q, 3), generator=gen).float()
        gf = torch.randint(-2, 3, (num_g, 3), generator=gen).float()
    else:
        centres = torch.randn(num_ids + 2, 16, generator=gen)
        q_ids = torch.randint(0, num_ids + 2, (num_q,), generator=gen)  # some ids absent from the gallery
        g_ids = torch.randint(0, num_ids, (num_g,), generator=gen)
        qf = centres[q_ids] + 1.5 * torch.randn(num_q, 16, generator=gen)
        gf = centres[g_ids] + 1.5 * torch.randn(num_g, 16, generator=gen)
    if integer:
        q_ids = torch.randint(0, num_ids + 2, (num_q,), generator=gen)
        g_ids = torch.randint(0, num_ids, (num_g,), generator=gen)
    q_cams = torch.randint(0, 3, (num_q,), generator=gen)
    g_cams = torch.randint(0, 3, (num_g,), generator=gen)
    return qf, gf, q_ids, g_ids, q_cams, g_cams


PROBLEMS = [  # seed, queries, gallery, identities, integer features (ties)
    (0, 1, 1, 1, True),
    (1, 7, 12, 3, True),
    (2, 40, 90, 6, True),
    (3, 60, 150, 20, True),
    (4, 120, 700, 40, False),
]


@pytest.fixture(params=["sparse", "dense"])
def bucket_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Force one of cmc_map's two exact ways to place negatives (see reid/metrics.py)."""
    monkeypatch.setattr(metrics, "_DENSE_SHARE", 1.0 if request.param == "sparse" else -1.0)
    return request.param


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_cmc_map_matches_reference_loop(problem: tuple, metric: str, bucket_path: str) -> None:
    qf, gf, q_ids, g_ids, q_cams, g_cams = _random_problem(*problem)
    dist = pairwise_distance(qf, gf, metric).numpy()
    for cams in ((q_cams, g_cams), (None, None)):
        np_cams = [None if c is None else c.numpy() for c in cams]
        try:
            ref = reference_cmc_map(dist, q_ids.numpy(), g_ids.numpy(), *np_cams, max_rank=20)
        except ValueError:  # no valid query in this tiny problem: ours must say so too
            with pytest.raises(ValueError, match="no query"):
                cmc_map(qf, gf, q_ids, g_ids, *cams, max_rank=20, metric=metric)
            continue
        chunks = (None, 7, 1) if qf.shape[0] <= 60 else (None, 7)
        results = [cmc_map(qf, gf, q_ids, g_ids, *cams, max_rank=20, metric=metric, chunk_size=c)
                   for c in chunks]
        for ours in results:
            assert ours["num_valid"] == ref["num_valid"]
            assert np.abs(ours["cmc"].numpy() - ref["cmc"]).max() < 1e-6
            assert abs(ours["mAP"] - ref["mAP"]) < 1e-6
            assert abs(ours["mINP"] - ref["mINP"]) < 1e-6
        # chunking on vs off: identical, not just close
        for ours in results[1:]:
            assert torch.equal(ours["cmc"], results[0]["cmc"])
            assert (ours["mAP"], ours["mINP"]) == (results[0]["mAP"], results[0]["mINP"])


def test_cmc_map_from_distances_with_many_ties(bucket_path: str) -> None:
    # distances drawn from {-1.5, -0.0, 0.0, 1, 2}: almost every comparison is a tie,
    # negative values are allowed, and -0.0 must tie with 0.0 (as in a stable sort)
    gen = torch.Generator().manual_seed(5)
    values = torch.tensor([-1.5, -0.0, 0.0, 1.0, 2.0])
    dist = values[torch.randint(0, 5, (50, 80), generator=gen)]
    q_ids, g_ids = torch.randint(-1, 4, (50,), generator=gen), torch.randint(-1, 4, (80,), generator=gen)
    q_cams, g_cams = torch.randint(0, 2, (50,), generator=gen), torch.randint(0, 2, (80,), generator=gen)
    ref = reference_cmc_map(dist.numpy(), q_ids.numpy(), g_ids.numpy(), q_cams.numpy(), g_cams.numpy())
    for chunk in (None, 3):
        ours = cmc_map_from_distances(dist, q_ids, g_ids, q_cams, g_cams, chunk_size=chunk)
        assert np.abs(ours["cmc"].numpy() - ref["cmc"]).max() < 1e-6
        assert abs(ours["mAP"] - ref["mAP"]) < 1e-6 and abs(ours["mINP"] - ref["mINP"]) < 1e-6


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("problem", PROBLEMS[1:])
def test_rank_k_matches_reference_loop(problem: tuple, metric: str) -> None:
    qf, gf, *_ = _random_problem(*problem)
    gen = torch.Generator().manual_seed(problem[0])
    gt = torch.randint(0, gf.shape[0], (qf.shape[0],), generator=gen)
    ks = (1, 2, 5, 10)
    ref = reference_rank_k(pairwise_distance(qf, gf, metric).numpy(), gt.numpy(), ks)
    ours = rank_k_accuracy(qf, gf, gt, ks=ks, metric=metric)
    assert ours.keys() == ref.keys()
    for k in ks:
        assert abs(ours[k] - ref[k]) < 1e-6


# --------------------------------------------------------------------------- extract_features


class TinyEmbedder(nn.Module):
    """[B, 3, 4, 4] -> [B, 5]: Flatten + Linear, with a classifier head that embed() skips."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
        self.head = nn.Linear(5, 2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class BatchOnly:
    """The .batch(idx) form of an image source, recording the indices it was asked for."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images
        self.calls: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        self.calls.append(idx.tolist())
        return self.images[idx]


def test_extract_features_batches_modes_and_sources(capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    model = TinyEmbedder()
    images = torch.randn(20, 3, 4, 4)
    expected = model.body(images).detach()  # [20, 5]

    model.train()
    small = extract_features(model, images, batch_size=7)
    assert model.training  # restored
    big = extract_features(model, images, batch_size=256)
    assert small.shape == (20, 5) and small.dtype == torch.float32 and small.device.type == "cpu"
    assert torch.allclose(small, big, atol=1e-6) and torch.allclose(big, expected, atol=1e-6)
    assert not small.is_inference() and not big.is_inference()  # callers may normalise in place

    model.eval()
    half = extract_features(model, images.half(), batch_size=7)  # float16 cache
    assert not model.training and half.dtype == torch.float32
    assert torch.allclose(half, model.body(images.half().float()).detach(), atol=1e-5)

    source = BatchOnly(images)
    from_source = extract_features(model, source, batch_size=7, progress=True)
    assert [len(c) for c in source.calls] == [7, 7, 6] and source.calls[2][0] == 14
    assert torch.allclose(from_source, expected, atol=1e-6)
    captured = capsys.readouterr()
    assert captured.err == ""  # the progress bar goes to stdout

    bf16 = extract_features(model, images, amp_dtype=torch.bfloat16)
    assert bf16.dtype == torch.float32 and torch.allclose(bf16, expected, atol=0.1)

    model.train()
    model.head.eval()  # mixed modes (e.g. a frozen part) come back as they were
    extract_features(model, images)
    assert model.training and model.body.training and not model.head.training


def test_extract_features_flip_averages_the_mirror_image() -> None:
    torch.manual_seed(0)
    model = TinyEmbedder()
    images = torch.randn(9, 3, 4, 4)
    plain = extract_features(model, images)
    mirrored = extract_features(model, images.flip(-1))
    both = extract_features(model, images, batch_size=4, flip=True)
    assert torch.allclose(both, (plain + mirrored) / 2, atol=1e-6)
    assert not torch.allclose(both, plain, atol=1e-3)  # the mirror image really went through
    half = images[..., :2]
    symmetric = torch.cat([half, half.flip(-1)], dim=-1)  # [9, 3, 4, 4], its own mirror image
    assert torch.allclose(extract_features(model, symmetric, flip=True), extract_features(model, symmetric), atol=1e-6)


def test_extract_features_without_embed_uses_forward_first_output() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.lin(x.flatten(1)[:, :2]), x

    model = Pair().train()
    images = torch.randn(5, 3, 1, 1)
    feats = extract_features(model, images, batch_size=2)
    assert feats.shape == (5, 3) and model.training
    assert torch.allclose(feats, model.lin(images.flatten(1)[:, :2]).detach(), atol=1e-6)


# --------------------------------------------------------------------------- one retrieval


class _TwoOutputs(nn.Module):
    """forward -> (channel means [N, 3], logits [N, 1]); embed -> 2 × channel means. In train
    mode the features are NaN, so a test sees whether extraction switched to eval mode."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = x.mean(dim=(2, 3)) * self.w  # [N, 3]
        return (f * float("nan") if self.training else f), f.sum(1, keepdim=True)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * self.forward(x)[0]


def test_extract_features_output_train_is_forwards_first_output_and_mode_is_restored() -> None:
    model = _TwoOutputs().train()
    x = torch.rand(5, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    train_feats = extract_features(model, x, batch_size=2, output="train")
    assert torch.allclose(train_feats, x.mean(dim=(2, 3)))
    assert torch.allclose(extract_features(model, x, output="embed"), 2 * x.mean(dim=(2, 3)))
    assert model.training  # eval mode inside, the previous mode afterwards
    with pytest.raises(ValueError, match="output must be one of"):
        extract_features(model, x, output="logits")


def test_differentiable_distance_equals_the_evaluation_path_and_has_finite_gradients() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(7, 5, generator=gen)
    x[3] = x[1]  # two identical rows: distance 0 with a finite gradient
    for metric in ("euclidean", "cosine"):
        plain = pairwise_distance(x, x, metric)
        xg = x.clone().requires_grad_(True)
        d = pairwise_distance(xg, xg, metric)
        assert d.requires_grad
        assert torch.allclose(d.detach(), plain, atol=1e-5), metric
        d.sum().backward()
        assert torch.isfinite(xg.grad).all(), metric
    with torch.no_grad():  # no autograd: the blocked in-place path, exact zeros
        assert pairwise_distance(x, x)[1, 3] == 0.0


def _random_retrieval_problem(seed: int, num_g: int = 12, num_q: int = 9, dim: int = 4):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 4, (num_q, dim), generator=gen).float()  # small integers: many ties
    g = torch.randint(0, 4, (num_g, dim), generator=gen).float()
    gt = torch.randint(0, num_g, (num_q,), generator=gen)
    return q, g, gt


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_metrics_equal_rank_k_and_cmc_map_computed_apart(metric: str, seed: int) -> None:
    q, g, gt = _random_retrieval_problem(seed)
    got = evaluate.Retrieval.from_features(q, g, gt, metric).metrics()
    ranks = rank_k_accuracy(q, g, gt, ks=(1, 5, 10), metric=metric)
    cm = cmc_map(q, g, gt, torch.arange(len(g)), metric=metric)
    assert got == {"rank1": ranks[1], "rank5": ranks[5], "rank10": ranks[10], "mAP": cm["mAP"], "mINP": cm["mINP"]}
    assert tuple(got) == evaluate.RETRIEVAL_METRICS
    assert got["rank1"] == pytest.approx(float(cm["cmc"][0]))  # one correct image: CMC@1 = Rank-1


def test_retrieval_ranked_is_a_stable_sort_by_hand() -> None:
    # query at 0; gallery at 1, 0, 1, 0 (1-d): ties go to the lower gallery index
    r = evaluate.Retrieval.from_features(torch.tensor([[0.0]]), torch.tensor([[1.0], [0.0], [-1.0], [0.0]]),
                                         torch.tensor([3]))
    assert r.ranked(4).tolist() == [[1, 3, 0, 2]]
    assert r.ranked(2).tolist() == [[1, 3]]
    assert r.metrics()["rank1"] == 0.0 and r.metrics()["rank5"] == 1.0


def test_retrieval_computes_distances_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = evaluate.pairwise_distance
    monkeypatch.setattr(evaluate, "pairwise_distance", lambda *a, **k: calls.append(1) or real(*a, **k))
    q, g, gt = _random_retrieval_problem(0)
    r = evaluate.Retrieval.from_features(q, g, gt)
    r.metrics(), r.ranked(3), r.metrics()
    assert len(calls) == 1


class _CountingSource:
    def __init__(self, images: torch.Tensor) -> None:
        self.images, self.batches = images, 0

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        self.batches += 1
        return self.images[idx]


def test_retrieve_extracts_each_image_once() -> None:
    gen = torch.Generator().manual_seed(5)
    ds = type("DS", (), {})()
    ds.queries = _CountingSource(torch.rand(3, 3, 4, 4, generator=gen))
    ds.gallery = _CountingSource(torch.rand(5, 3, 4, 4, generator=gen))
    ds.gt = torch.tensor([0, 4, 2])
    model = _TwoOutputs()
    r = evaluate.retrieve(model, ds, batch_size=8)
    assert (ds.queries.batches, ds.gallery.batches) == (1, 1)
    assert torch.allclose(r.query, 2 * ds.queries.images.mean(dim=(2, 3)))
    assert r.dist.shape == (3, 5) and r.metric == "euclidean" and r.flip is False


def test_retrieval_without_ground_truth_refuses_metrics_but_ranks() -> None:
    r = evaluate.Retrieval.from_features(torch.zeros(2, 3), torch.ones(4, 3), torch.tensor([-1, -1]))
    assert r.ranked(1).tolist() == [[0], [0]]
    with pytest.raises(ValueError, match="no ground truth"):
        r.metrics()


def test_concat_and_mirrored_sources_by_hand() -> None:
    a = _CountingSource(torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2))
    b = _CountingSource(-torch.arange(3 * 3 * 2 * 2, dtype=torch.float32).view(3, 3, 2, 2))
    both = evaluate.ConcatSource(a, b)
    assert len(both) == 5
    got = both.batch(torch.tensor([3, 0, 4]))  # any order: b's row 1, a's row 0, b's row 2
    assert torch.equal(got, torch.stack([b.images[1], a.images[0], b.images[2]]))
    with pytest.raises(IndexError, match=r"outside \[0, 5\)"):
        both.batch(torch.tensor([5]))
    mirrored = evaluate.MirroredSource(a)
    assert torch.equal(mirrored.batch(torch.tensor([1])), a.images[1:2].flip(-1))
