"""Training: device, seeds and AMP; losses; P×K sampling; batch augmentation; the loop.

Map (handout words → code):
  * device / AMP / seeds ........ pick_device, seed_everything, resolve_amp (cpu_has_bf16),
                                  autocast_context
  * ID loss, triplet loss ....... id_loss, handout_triplet_loss (margin HANDOUT_MARGIN);
                                  triplets mined in a batch of the CSV's rows: mined_triplet_loss,
                                  batch_all_triplet_loss (TrainConfig.mining)
  * stronger recipe ............. batch_hard_triplet_loss, PKSampler, random_flip,
                                  random_erasing, warmup_cosine
  * training .................... TrainConfig (presets), train_model -> History
  * checkpoints ................. save_checkpoint / load_checkpoint (CheckpointError)

Everything the loop draws at random (shuffles, P×K picks, flips, erasing) comes from one
CPU ``torch.Generator`` seeded with ``cfg.seed``; dropout uses torch's global RNG, seeded
by ``seed_everything``. Both are checkpointed, so a resumed CPU run repeats an
uninterrupted one number for number.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import math
import os
import random
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm  # plain text bars on stdout: no widget warnings on stderr

from reid.evaluate import METRICS, retrieval_metrics, retrieval_scores

# The handout's triplet loss acts on the 256-d feature that comes out of BN → ReLU →
# Dropout, so it is non-negative and, at initialisation, each coordinate is roughly
# max(0, z) with z ~ N(0, 1): two unrelated images are about
# sqrt(2 · 256 · (1/2 − 1/(2π))) ≈ 13 apart (Euclidean). Distances scale with the
# feature norm (BN's γ can grow), so any margin is relative; 1.0 (≈ 8 % of that typical
# distance, PyTorch's default) asks for a clear gap without forcing the net to inflate
# the feature scale to satisfy it. The validation loss uses the same margin.
HANDOUT_MARGIN = 1.0
VAL_TRIPLET_SEED = 1234  # fixed for every recipe, so validation-loss curves compare
CHECKPOINT_NAME = "last.pt"
_CHECKPOINT_FORMAT = 1
_CHECK_EVERY = 10  # iterations between loss syncs (finite check, progress postfix)
RECIPES = ("id", "triplet", "strong")
MINING = ("none", "negative", "batch_hard", "batch_all")  # TrainConfig.mining, "triplet" recipe


# --------------------------------------------------------------------- device, seeds, AMP
def pick_device(prefer: str | torch.device | None = None) -> torch.device:
    """The device to train on: ``prefer`` if given, else CUDA when available, else CPU."""
    if prefer is not None:
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch (all devices); ``deterministic`` also pins cuDNN."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Does this CPU multiply bfloat16 in hardware (x86 flags ``avx512_bf16`` or ``amx_bf16``)?

    There oneDNN runs the network's bfloat16 convolutions about twice as fast as float32
    (``bench/bench_train.py``); elsewhere it emulates bfloat16, slower than float32.
    ``cpuinfo``: the text of /proc/cpuinfo (read when None; no such file → False).
    """
    if cpuinfo is None:
        return _cpu_has_bf16_here()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return bool({"avx512_bf16", "amx_bf16"} & set(line.partition(":")[2].split()))
    return False


@functools.lru_cache(maxsize=1)
def _cpu_has_bf16_here() -> bool:
    try:
        return cpu_has_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: no cheap way to tell, so stay in float32
        return False


def resolve_amp(device: torch.device, amp: bool | None) -> torch.dtype | None:
    """Autocast dtype to use, or None for full fp32.

    ``amp=None`` means on where it is fast: on CUDA, and on a CPU with bfloat16 in hardware
    (:func:`cpu_has_bf16`). CUDA uses bfloat16 from compute capability 8.0 (Ampere) on, else
    float16 (which then needs a GradScaler); the CPU uses bfloat16 (``amp=True`` forces it).
    """
    if amp is None:
        amp = device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16())
    if not amp:
        return None
    if device.type == "cuda" and torch.cuda.get_device_capability(device) < (8, 0):
        return torch.float16  # pre-Ampere GPUs (e.g. Colab's T4) only emulate bfloat16
    return torch.bfloat16


def autocast_context(device: torch.device, enabled: bool | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for ``device`` with the dtype of :func:`resolve_amp`, or a no-op."""
    return _autocast(device, resolve_amp(device, enabled))


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def make_grad_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A GradScaler that is active only for float16 (bfloat16 has fp32's exponent range)."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


# ------------------------------------------------------------------------------- losses
def id_loss(logits: Tensor, ids: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Cross-entropy over the training identities. logits [N, C] float, ids [N] long."""
    return F.cross_entropy(logits.float(), ids, label_smoothing=label_smoothing)


def handout_triplet_loss(a: Tensor, p: Tensor, n: Tensor, margin: float = HANDOUT_MARGIN) -> Tensor:
    """The handout's ``nn.TripletMarginLoss`` (Euclidean) on features [N, D] of a, p, n."""
    return nn.functional.triplet_margin_loss(a.float(), p.float(), n.float(), margin=margin)


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distances [N, N] between the rows of x [N, D], safe to backprop at 0."""
    sq = x.pow(2).sum(dim=1)  # [N]
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)  # [N, N]
    return d2.clamp_min(1e-12).sqrt()  # the clamp keeps sqrt's gradient finite at 0


def batch_hard_triplet_loss(feats: Tensor, ids: Tensor, margin: float) -> Tensor:
    """Batch-hard triplet loss (Hermans, Beyer & Leibe 2017, "In Defense of the Triplet Loss").

    For every anchor i: the farthest same-id sample and the nearest other-id sample in the
    batch; loss = mean_i max(0, d(i, hardest pos) − d(i, hardest neg) + margin).
    feats [N, D] (computed in fp32), ids [N]. An anchor with no other-id sample in the
    batch contributes 0; one with no other same-id sample uses itself (distance 0).
    """
    dist = pairwise_distances(feats.float())  # [N, N]
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
        dist = torch.cdist(anchors, feats)  # [B, 3B]
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
    margin.
    """
    feats = feats.float()
    b = len(feats) // 3
    with torch.no_grad():
        same = ids[:b, None] == ids[None, :]  # [B, 3B]
        neg_of = ~same  # [B, 3B]
        same[torch.arange(b), torch.arange(b)] = False  # an anchor is not its own positive
        a, pos = torch.nonzero(same, as_tuple=True)  # [M] (anchor row, positive column)
        m_idx, n = torch.nonzero(neg_of[a], as_tuple=True)  # [T]: triplet m_idx of pair, negative n
    losses = F.triplet_margin_loss(feats[a[m_idx]], feats[pos[m_idx]], feats[n], margin=margin,
                                   reduction="none")  # [T]
    active = losses > 0
    return losses[active].mean() if bool(active.any()) else losses.sum() * 0.0


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


# ------------------------------------------------------------------------------ sampling
class PKSampler:
    """Batches of P identities × K images each, as index tensors [P·K] (Hermans et al. 2017).

    Per epoch each identity's images are shuffled and cut into chunks of K (an identity
    with fewer than K images is topped up by drawing with replacement); each batch takes
    one chunk from each of the P identities with the most chunks left, ties broken at
    random, so the batch count is fixed (``len``) and every batch has P distinct ids.
    All randomness comes from ``generator``.
    """

    def __init__(self, ids: Tensor, p: int, k: int, generator: torch.Generator | None = None):
        self.ids, self.p, self.k = ids.cpu().long(), p, k
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.members = [torch.nonzero(self.ids == i).flatten() for i in self.ids.unique()]
        self.chunks = torch.tensor([max(1, len(m) // k) for m in self.members])  # [num ids]
        if len(self.members) < p:
            raise ValueError(f"PKSampler needs at least P={p} identities, got {len(self.members)}")

    def __len__(self) -> int:
        """Most batches with P distinct ids: the largest b with Σ min(chunks, b) ≥ P·b."""
        b = int(self.chunks.sum()) // self.p
        while self.chunks.clamp(max=b).sum() < self.p * b:
            b -= 1
        return b

    def _identity_chunks(self, members: Tensor) -> list[Tensor]:
        g, k = self.generator, self.k
        order = members[torch.randperm(len(members), generator=g)]
        if len(order) < k:
            extra = order[torch.randint(len(order), (k - len(order),), generator=g)]
            order = torch.cat([order, extra])
        return list(order[: len(order) // k * k].view(-1, k))

    def __iter__(self) -> Iterator[Tensor]:
        pools = [self._identity_chunks(m) for m in self.members]
        left = torch.tensor([len(c) for c in pools], dtype=torch.float64)  # [num ids]
        for _ in range(len(self)):
            tie = torch.rand(len(pools), generator=self.generator, dtype=torch.float64)
            chosen = torch.topk(left + 0.5 * tie, self.p).indices  # most chunks left first
            left[chosen] -= 1
            yield torch.cat([pools[i].pop() for i in chosen.tolist()])


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator) -> list[Tensor]:
    """A fresh permutation of range(n) cut into full batches [B]; the remainder is dropped
    (at least one batch is kept when n < B). Reshuffled each epoch, so all rows get used."""
    perm = torch.randperm(n, generator=generator)
    if n <= batch_size:
        return [perm]
    return list(perm[: n // batch_size * batch_size].view(-1, batch_size))


# -------------------------------------------------------------------------- augmentation
def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of x [B, C, H, W] left-right with probability p (zero padding stays
    zero padding, so padded crops flip safely)."""
    flip = (torch.rand(len(x), generator=generator) < p).to(x.device)  # [B]
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_shift(x: Tensor, generator: torch.Generator, max_shift: int) -> Tensor:
    """Translate each image of x [B, C, H, W] by its own (dy, dx), each uniform in
    [-max_shift, max_shift] pixels, filling with zeros (the padding value after
    normalisation): Bag of Tricks' "pad, then random crop back to size", as one gather."""
    if max_shift <= 0:
        return x
    B, _, H, W = x.shape
    s = max_shift
    d = torch.randint(-s, s + 1, (2, B), generator=generator).to(x.device)  # [2, B]: dy, dx
    xp = F.pad(x, (s, s, s, s))  # [B, C, H + 2s, W + 2s]
    rows = torch.arange(H, device=x.device)[None] + s - d[0][:, None]  # [B, H]
    cols = torch.arange(W, device=x.device)[None] + s - d[1][:, None]  # [B, W]
    b = torch.arange(B, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


def _content_box(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image box (top, height, left, width) [B] each, of the non-padded (non-zero) area."""
    B, _, H, W = x.shape
    nz = x.detach().abs().amax(dim=1) > 0  # [B, H, W]
    rows, cols = nz.any(dim=2).cpu(), nz.any(dim=1).cpu()  # [B, H], [B, W]

    def span(m: Tensor, size: int) -> tuple[Tensor, Tensor]:
        idx = torch.arange(size)
        first = torch.where(m, idx, size).amin(dim=1)
        last = torch.where(m, idx, -1).amax(dim=1)
        empty = first > last  # an all-zero image: use the whole frame
        return torch.where(empty, 0, first), torch.where(empty, size, last - first + 1)

    top, h = span(rows, H)
    left, w = span(cols, W)
    return top, h, left, w


def random_erasing(x: Tensor, generator: torch.Generator, p: float = 0.5,
                   scale: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 3.3),
                   value: float = 0.0) -> Tensor:
    """Random erasing (Zhong et al. 2020) of one rectangle per image, vectorised over x [B, C, H, W].

    With probability p, a rectangle of area scale × (content area) and aspect ratio h/w in
    ``ratio`` (log-uniform) is set to ``value`` (0 = the mean colour after normalisation).
    It is placed inside the image's non-zero content box, so it lands on the person, not on
    the zero padding; sides are clipped to the box instead of re-drawing.
    """
    B, _, H, W = x.shape
    g = generator
    top, bh, left, bw = _content_box(x)  # [B] each, CPU
    area = (bh * bw).double() * torch.empty(B, dtype=torch.float64).uniform_(*scale, generator=g)
    logr = torch.empty(B, dtype=torch.float64).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=g)
    h = torch.sqrt(area * logr.exp()).round().long().clamp(1, None).minimum(bh)  # [B]
    w = torch.sqrt(area / logr.exp()).round().long().clamp(1, None).minimum(bw)  # [B]
    y0 = top + (torch.rand(B, generator=g, dtype=torch.float64) * (bh - h + 1)).long()  # [B]
    x0 = left + (torch.rand(B, generator=g, dtype=torch.float64) * (bw - w + 1)).long()  # [B]
    apply = torch.rand(B, generator=g) < p  # [B]
    ys, xs = torch.arange(H), torch.arange(W)
    in_rows = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + h)[:, None])  # [B, H]
    in_cols = (xs[None] >= x0[:, None]) & (xs[None] < (x0 + w)[:, None])  # [B, W]
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :] & apply[:, None, None, None]
    return x.masked_fill(mask.to(x.device), value)  # mask [B, 1, H, W]


def warmup_cosine(warmup_iters: int, total_iters: int, min_factor: float = 0.01) -> Callable[[int], float]:
    """LR factor per iteration for ``LambdaLR``: linear warm-up from 1/warmup_iters to 1,
    then a cosine from 1 down to ``min_factor`` at ``total_iters``."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            return (step + 1) / warmup_iters
        t = min(1.0, (step - warmup_iters) / max(1, total_iters - warmup_iters))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


# ------------------------------------------------------------------------ config, history
@dataclass
class TrainConfig:
    """Settings of one training run (see the presets for the values we use and why).

    recipe: "id" (CE on logits, IDLossDataset), "triplet" (TripletMarginLoss on features,
    TripletDataset) or "strong" (batch-hard triplet + label-smoothed CE on P×K batches).
    batch_size counts images for "id", triplets for "triplet" (3× the images per step);
    "strong" uses p × k images, "triplet" with mining="batch_hard" / "batch_all" p × k triplets.
    flip / shift / erase: training augmentation, in that order: random horizontal flip, a
    random translation of up to ``shift`` pixels each way with zero fill (random_shift; 0 =
    off) and random erasing.
    amp: None = on where it is fast (CUDA; a CPU with bfloat16 in hardware, see resolve_amp).
    max_iters_per_epoch caps each epoch
    (quick mode); time_budget_s stops after the epoch in which wall time exceeds it.
    flip_test: val Rank-k and mAP average each image's feature with its mirror image's
    (test-time flip; the val loss still uses the images as they are). metric: the distance
    val Rank-k and mAP rank by, "euclidean" or "cosine" (the val loss stays Euclidean).
    mining ("triplet" only; identities from train_idloss.csv, see TripletDataset.label_from):
    "none" trains on the CSV's triplets as they are; "negative" keeps each listed anchor and
    positive and takes as negative the nearest image of another identity among the batch's 3B
    images; "batch_hard" draws batches of p anchor identities × k listed triplets (a PKSampler
    over the rows by their anchor's identity: each epoch uses ⌊n/k⌋·k of an identity's n rows,
    a different draw each epoch) and takes for each anchor the farthest image of its identity and
    the nearest of another among the batch's 3·p·k images (Hermans et al. 2017's batch-hard
    triplets, built from the CSV's rows); "batch_all" draws the same batches and averages the
    loss over every violating triplet of a listed anchor with the batch's images.
    """

    recipe: str = "id"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 5e-4
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd" (momentum 0.9, Nesterov)
    margin: float = HANDOUT_MARGIN
    label_smoothing: float = 0.0
    p: int = 16
    k: int = 4
    warmup_epochs: float = 0.0
    min_lr_factor: float = 0.01
    flip: bool = False
    shift: int = 0
    erase: bool = False
    amp: bool | None = None
    seed: int = 0
    max_iters_per_epoch: int | None = None
    time_budget_s: float | None = None
    eval_batch_size: int = 256
    flip_test: bool = False
    metric: str = "euclidean"
    mining: str = "none"
    device: str | None = None  # None: pick_device()

    @classmethod
    def handout_id(cls, **overrides: Any) -> "TrainConfig":
        """Handout ID-loss recipe: CE over the training identities, batch 64, Adam 3e-4 with L2
        5e-4 (the usual ReID Adam setting), 40 epochs with a cosine decay (no warm-up: the net
        is small and BN keeps early steps tame). Settings the handout leaves open, chosen by
        measurement on the Market layout (bench/BENCHMARKS.md): random horizontal flips, random
        shifts of up to 8 pixels each way and label smoothing 0.1 against overfitting the 10
        images per identity (without flips and smoothing the 20-minute run peaked at 0.304 after
        8 epochs and fell to 0.245; with them and no shift it ended at 0.518 in 24 epochs, with
        the shift at 0.597), and test-time flip."""
        base = cls(recipe="id", flip=True, shift=8, label_smoothing=0.1, flip_test=True)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def handout_triplet(cls, **overrides: Any) -> "TrainConfig":
        """Handout triplet recipe: nn.TripletMarginLoss(margin=HANDOUT_MARGIN) on the 256-d
        feature, trained from the rows of train_random_triplet.csv, Adam 3e-4 / 5e-4 with a
        cosine decay, flips and test-time flip as handout_id. The rows are drawn as P=8 anchor
        identities × K=4 rows (32 triplets, 96 images a step) and each listed anchor forms a
        triplet with every other image of its identity and every image of another identity in
        the batch; the loss is averaged over the triplets that violate the margin
        (mining="batch_all"). Measured on the Market layout (bench/BENCHMARKS.md): val Rank-1
        0.406 after 3 epochs, against 0.239 for the listed triplets as they are (mining="none":
        they go slack, mean loss 0.78 → 0.20) and 0.211 for batch-hard mining; in 20-minute
        runs 0.575 against 0.228 for batch-hard."""
        base = cls(recipe="triplet", margin=HANDOUT_MARGIN, mining="batch_all", p=8, k=4,
                   flip=True, flip_test=True)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def strong(cls, **overrides: Any) -> "TrainConfig":
        """Stronger recipe for BNNeckNet, after "Bag of Tricks" (Luo et al. 2019): P=16 ids ×
        K=4 images, batch-hard triplet (margin 0.3 on the pre-BN feature) + CE with label
        smoothing 0.1, random flip and a random shift of up to 8 pixels each way (Bag of
        Tricks' pad-and-crop), Adam 1e-3 / 5e-4 with 5 warm-up epochs and a cosine decay over
        60 epochs (an epoch is only ~35 P×K batches on 230 × 10 images); retrieval by cosine
        distance on the BN-normalised feature, as Bag of Tricks does, with test-time flip.

        Two departures from Bag of Tricks, for training from scratch in minutes: lr 1e-3, not
        3.5e-4, and no random erasing (erase=True turns it on). Measured on the Market layout
        (bench/BENCHMARKS.md): 5 epochs, val Rank-1 0.479 against 0.248 with Bag of Tricks'
        3.5e-4 + erasing; 26 epochs (14 min), 0.656 with the shift against 0.597 without it,
        and 0.594 in 34 epochs with erasing added instead."""
        base = cls(recipe="strong", epochs=60, lr=1e-3, margin=0.3, label_smoothing=0.1,
                   p=16, k=4, batch_size=64, warmup_epochs=5.0, flip=True, shift=8, erase=False,
                   flip_test=True, metric="cosine")
        if "epochs" in overrides and "warmup_epochs" not in overrides:
            # A shorter run keeps the warm-up to at most a quarter of it, so the cosine decay happens.
            overrides["warmup_epochs"] = min(base.warmup_epochs, overrides["epochs"] / 4)
        return dataclasses.replace(base, **overrides)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


@dataclass
class History:
    """What a run measured. Per iteration: iter_loss. Per completed epoch: the rest.

    rank1/5/10 and mAP are fractions on the val split; val_loss is the fixed-val-triplet
    margin loss (see :func:`train_model`; None without val_idloss). epoch_seconds: the
    training part of each epoch; elapsed_seconds: cumulative wall time at each epoch end,
    validation and checkpoint included (what the time budget counts).
    """

    recipe: str = ""
    iter_loss: list[float] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    rank1: list[float | None] = field(default_factory=list)
    rank5: list[float | None] = field(default_factory=list)
    rank10: list[float | None] = field(default_factory=list)
    mAP: list[float | None] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    elapsed_seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_train_loss)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def save_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))


# ------------------------------------------------------------------------------- recipes
class Recipe:
    """The data side and the loss of cfg.recipe, over a train set's tensor cache.

    "id": shuffled batches of IDLossDataset rows, CE on the logits. "triplet": shuffled
    batches of TripletDataset rows (P×K batches of rows with mining="batch_hard" / "batch_all");
    a, p, n go through the model as one batch [3B, ...] and TripletMarginLoss acts on the
    features, of the listed triplets or of triplets formed in the batch (cfg.mining,
    mined_triplet_loss, batch_all_triplet_loss). "strong": P×K batches of IDLossDataset rows,
    batch-hard triplet on the features + label-smoothed CE on the logits.
    """

    def __init__(self, data: Any, cfg: TrainConfig, device: torch.device, generator: torch.Generator):
        self.cache, self.cfg, self.device, self.g = data.cache, cfg, device, generator
        self.triplets = data.triplets.cpu() if cfg.recipe == "triplet" else None  # [T, 3]
        mined = cfg.recipe == "triplet" and cfg.mining != "none"
        if mined and getattr(data, "ids", None) is None:
            raise ValueError(f"mining={cfg.mining!r} needs the identity of every triplet image: call "
                             "TripletDataset.label_from(IDLossDataset of train_idloss.csv) first")
        self.ids = data.ids.to(device) if cfg.recipe != "triplet" or mined else None  # [N]
        self.sampler = None
        if cfg.recipe == "strong":
            self.sampler = PKSampler(data.ids, cfg.p, cfg.k, generator)
        elif mined and cfg.mining in ("batch_hard", "batch_all"):  # P ids × K rows, by the anchor's id
            self.sampler = PKSampler(data.ids.cpu()[self.triplets[:, 0]], cfg.p, cfg.k, generator)

    def num_batches(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        rows = self.triplets if self.triplets is not None else self.ids
        return max(1, len(rows) // self.cfg.batch_size)

    def plan(self) -> list[Tensor]:
        """This epoch's index batches (rows of the dataset), drawn from the generator."""
        if self.sampler is not None:
            return list(self.sampler)
        rows = self.triplets if self.triplets is not None else self.ids
        return shuffled_batches(len(rows), self.cfg.batch_size, self.g)

    def images(self, idx: Tensor) -> Tensor:
        """Batch [B, 3, H, W] float32 on ``device`` in channels_last, augmented when the config
        says so. One copy: float16 cache rows → float32 channels_last (see bench_train.py)."""
        x = self.cache.images[idx.to(self.cache.device)]  # [B, 3, H, W] float16
        x = x.to(self.device, torch.float32, non_blocking=True, memory_format=torch.channels_last)
        if self.cfg.flip:
            x = random_flip(x, self.g)
        if self.cfg.shift:
            x = random_shift(x, self.g, self.cfg.shift)
        if self.cfg.erase:
            x = random_erasing(x, self.g)
        return x.contiguous(memory_format=torch.channels_last)

    def loss(self, run: "TrainRun", idx: Tensor) -> Tensor:
        """Scalar loss of one index batch idx [B] (fp32, computed outside autocast)."""
        cfg = self.cfg
        if self.triplets is not None:
            rows = self.triplets[idx]  # [B, 3]
            flat = rows.T.reshape(-1)  # [3B]: anchors, positives, negatives
            feats, _ = run.forward(self.images(flat))  # one pass over [3B, ...]
            if self.ids is not None:
                ids = self.ids[flat.to(self.device)]  # [3B]
                if cfg.mining == "batch_all":
                    return batch_all_triplet_loss(feats, ids, cfg.margin)
                return mined_triplet_loss(feats, ids, cfg.margin, hardest_positive=cfg.mining == "batch_hard")
            a, p, n = feats.chunk(3)  # [B, D] each
            return handout_triplet_loss(a, p, n, cfg.margin)
        feats, logits = run.forward(self.images(idx))  # [B, D], [B, num_ids]
        ids = self.ids[idx.to(self.device)]  # [B]
        loss = id_loss(logits, ids, cfg.label_smoothing)
        if cfg.recipe == "strong":
            loss = loss + batch_hard_triplet_loss(feats, ids, cfg.margin)
        return loss


# ---------------------------------------------------------------------------- the loop
@dataclass
class TrainRun:
    """Everything a training step touches; built by :func:`build_run`."""

    model: nn.Module
    cfg: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    generator: torch.Generator  # CPU; all data-side randomness
    recipe: Recipe
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Model forward under autocast; (feat [N, D], logits [N, C]) returned as fp32."""
        with _autocast(self.device, self.amp_dtype):
            feats, logits = self.model(x)
        return feats.float(), logits.float()

    def iters_per_epoch(self) -> int:
        n = self.recipe.num_batches()
        cap = self.cfg.max_iters_per_epoch
        return n if cap is None else min(n, cap)


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD(momentum 0.9, Nesterov) with cfg.lr and cfg.weight_decay."""
    name, params = cfg.optimizer.lower(), model.parameters()
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"TrainConfig.optimizer: expected 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")


def build_run(model: nn.Module, cfg: TrainConfig, train_set: Any) -> TrainRun:
    """Move the model to the device and build optimiser, per-iteration LR schedule, scaler,
    the shuffling generator (seeded from cfg.seed) and the recipe over ``train_set``."""
    if cfg.recipe not in RECIPES:
        raise ValueError(f"TrainConfig.recipe: expected one of {RECIPES}, got {cfg.recipe!r}")
    if cfg.mining not in MINING:
        raise ValueError(f"TrainConfig.mining: expected one of {MINING}, got {cfg.mining!r}")
    if cfg.metric not in METRICS:
        raise ValueError(f"TrainConfig.metric: expected one of {METRICS}, got {cfg.metric!r}")
    if isinstance(cfg.shift, bool) or not isinstance(cfg.shift, int) or cfg.shift < 0:
        raise ValueError(f"TrainConfig.shift: expected the largest shift in pixels, an int >= 0 "
                         f"(0 = off), got {cfg.shift!r}")
    device = pick_device(cfg.device)
    amp_dtype = resolve_amp(device, cfg.amp)
    model.to(device, memory_format=torch.channels_last)  # faster convs on CPU (oneDNN) and GPU
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg)
    run = TrainRun(model, cfg, device, amp_dtype, generator, Recipe(train_set, cfg, device, generator),
                   optimizer, None, make_grad_scaler(device, amp_dtype))  # type: ignore[arg-type]
    n = run.iters_per_epoch()
    schedule = warmup_cosine(round(cfg.warmup_epochs * n), cfg.epochs * n, cfg.min_lr_factor)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return run


def _check_finite(losses: list[float], first_iter: int, epoch: int, run: TrainRun) -> None:
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            raise FloatingPointError(
                f"training loss is {v} at epoch {epoch + 1}/{run.cfg.epochs}, iteration "
                f"{first_iter + i + 1}/{run.iters_per_epoch()} (recipe {run.cfg.recipe!r}, lr "
                f"{run.cfg.lr}); lower the learning rate or check the inputs")


def train_epoch(run: TrainRun, epoch: int, progress: bool = False) -> list[float]:
    """One epoch of optimisation steps; returns the loss of each iteration.

    Losses stay on the device and are synced every few iterations (finite check, progress
    postfix), so a CUDA run is not stalled by a ``.item()`` per step.
    """
    run.model.train()
    batches = run.recipe.plan()[: run.iters_per_epoch()]
    done: list[float] = []
    pending: list[Tensor] = []
    # A notebook shows no nested text bars (the cursor-up code prints as text), so there the
    # batch bar is off and the epoch bar carries the numbers.
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", file=sys.stdout, leave=False, mininterval=1.0,
               disable=not progress or "ipykernel" in sys.modules)
    for i, idx in enumerate(bar):
        loss = run.recipe.loss(run, idx)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        with warnings.catch_warnings():  # a float16 step skipped by the scaler is expected
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            run.scheduler.step()
        pending.append(loss.detach())
        if len(pending) == _CHECK_EVERY or i == len(batches) - 1:
            values = torch.stack(pending).tolist()
            _check_finite(values, len(done), epoch, run)
            done += values
            pending = []
            bar.set_postfix(loss=f"{values[-1]:.4f}")
    return done


@torch.no_grad()
def forward_features(model: nn.Module, cache: Any, batch_size: int, device: torch.device,
                     amp_dtype: torch.dtype | None, flip: bool = False) -> Tensor:
    """The training feature (forward's first output) of every cache image, eval mode:
    [N, D] float32 on ``device``; of the mirror images with ``flip``."""
    model.eval()
    out = []
    for start in range(0, len(cache), batch_size):
        idx = torch.arange(start, min(start + batch_size, len(cache)))
        x = cache.batch(idx.to(cache.device)).to(device)
        if flip:
            x = x.flip(-1)
        with _autocast(device, amp_dtype):
            out.append(model(x)[0].float())
    return torch.cat(out)


def validation_loss(model: nn.Module, val_idloss: Any, triplets: Tensor, batch_size: int,
                    device: torch.device, amp_dtype: torch.dtype | None) -> float:
    """Mean TripletMarginLoss(HANDOUT_MARGIN) over fixed val triplets [T, 3] (eval mode)."""
    return _triplet_value(forward_features(model, val_idloss.cache, batch_size, device, amp_dtype), triplets)


def _triplet_value(feats: Tensor, triplets: Tensor) -> float:
    t = triplets.to(feats.device)
    return handout_triplet_loss(feats[t[:, 0]], feats[t[:, 1]], feats[t[:, 2]]).item()


def _rows_in(val_idloss: Any, val_set: Any) -> tuple[Tensor, Tensor] | None:
    """Rows of val_idloss holding val_set's query and gallery images ([Q], [G]), or None when
    some image is not in val_idloss.csv (the course's layout lists every val image there)."""
    row = {p: i for i, p in enumerate(val_idloss.paths)}
    try:
        return (torch.tensor([row[Path(p)] for p in val_set.queries.paths]),
                torch.tensor([row[Path(p)] for p in val_set.gallery.paths]))
    except (KeyError, AttributeError):
        return None


def evaluate_val(run: TrainRun, val_set: Any, val_idloss: Any = None,
                 val_triplets: Tensor | None = None) -> dict[str, float | None]:
    """Rank-1/5/10 and mAP of val queries against the val gallery, plus the val loss.

    When val_idloss.csv lists every val query and gallery image (the usual case) each image
    goes through the model once (twice with ``cfg.flip_test``): the val loss uses forward's
    first output, Rank-k its retrieval feature, ``model.embed_from_feature`` of the same tensor."""
    model, cfg = run.model, run.cfg
    kw = dict(batch_size=cfg.eval_batch_size, device=run.device, amp_dtype=run.amp_dtype, flip=cfg.flip_test,
              metric=cfg.metric)
    model.eval()
    if val_idloss is None or val_triplets is None or not len(val_triplets):
        return {**_ranks(retrieval_metrics(model, val_set, **kw)), "val_loss": None}
    feats = forward_features(model, val_idloss.cache, cfg.eval_batch_size, run.device, run.amp_dtype)  # [N, D]
    rows = _rows_in(val_idloss, val_set)
    if rows is None or not hasattr(model, "embed_from_feature"):
        metrics = retrieval_metrics(model, val_set, **kw)
    else:
        with torch.no_grad():
            emb = model.embed_from_feature(feats).float()  # [N, E]
            if cfg.flip_test:
                mirrored = forward_features(model, val_idloss.cache, cfg.eval_batch_size, run.device,
                                            run.amp_dtype, flip=True)
                emb = (emb + model.embed_from_feature(mirrored).float()) / 2
        emb = emb.cpu()
        metrics = retrieval_scores(emb[rows[0]], emb[rows[1]], val_set.gt, cfg.metric)
    return {**_ranks(metrics), "val_loss": _triplet_value(feats, val_triplets)}


def _ranks(metrics: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in ("rank1", "rank5", "rank10", "mAP")}


# ---------------------------------------------------------------------------- checkpoints
class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read back (truncated, corrupt, or another run's)."""


def _rng_state(generator: torch.Generator) -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(), "generator": generator.get_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python": random.getstate(),
            "numpy": (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}


def _set_rng_state(state: dict[str, Any], generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    generator.set_state(state["generator"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` atomically: a temporary file in the same folder, fsync, os.replace.
    A crash or Ctrl-C mid-write leaves the previous checkpoint as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; CheckpointError naming the file
    if it is truncated, corrupt or not one of ours. Tensors land on the CPU by default (RNG
    states must; load_state_dict copies weights and optimiser state to the model's device)."""
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # zip/pickle errors vary with how the file was damaged
        raise CheckpointError(f"{path}: unreadable checkpoint (truncated or corrupt?): {e}. "
                              f"Delete it to start over, or train without resume.") from e
    if not isinstance(state, dict) or state.get("format") != _CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a train_model checkpoint (format {_CHECKPOINT_FORMAT} expected)")
    return state


def _checkpoint_state(run: TrainRun, history: History, epochs_done: int) -> dict[str, Any]:
    return {"format": _CHECKPOINT_FORMAT, "epoch": epochs_done, "cfg": run.cfg.to_dict(),
            "history": history.to_dict(), "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(), "rng": _rng_state(run.generator)}


# Settings a resumed run may change: more epochs (or a budget) continue a finished run.
_RESUMABLE_CHANGES = {"epochs", "time_budget_s", "device", "eval_batch_size"}


def _restore(run: TrainRun, state: dict[str, Any], path: Path) -> History:
    # A setting added after the checkpoint was written reads as its default.
    saved, now = TrainConfig.from_dict(state["cfg"]).to_dict(), run.cfg.to_dict()
    changed = [f"{k}: {saved.get(k)!r} → {v!r}" for k, v in now.items()
               if k not in _RESUMABLE_CHANGES and saved.get(k) != v]
    if changed:
        raise CheckpointError(f"{path} was written with other settings ({'; '.join(changed)}); "
                              f"resuming would mix two runs. Use another checkpoint_dir, delete "
                              f"the file, or train with resume=False.")
    try:
        run.model.load_state_dict(state["model"])
    except RuntimeError as e:  # missing / unexpected keys or shape mismatches
        raise CheckpointError(f"{path} holds another model's weights ({e}). Use another "
                              f"checkpoint_dir, delete the file, or train with resume=False.") from e
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    _set_rng_state(state["rng"], run.generator)
    return History.from_dict(state["history"])


# --------------------------------------------------------------------------- train_model
def train_model(model: nn.Module, cfg: TrainConfig, train_set: Any, val_set: Any,
                val_idloss: Any = None, checkpoint_dir: str | Path | None = None,
                resume: bool = False, progress: bool = True) -> History:
    """Train ``model`` with ``cfg``'s recipe, validating after every epoch.

    train_set: IDLossDataset ("id", "strong") or TripletDataset ("triplet"); batches index
    its tensor cache directly, in an order drawn from a generator seeded with cfg.seed.
    val_set: RetrievalDataset (val) → Rank-1/5/10 (val gt) and mAP (query id = its gt
    gallery index, gallery id = position) per epoch; None skips validation.

    Validation loss: val identities are not training identities, so the classifier's CE
    cannot be computed on them. Instead, once and with a fixed seed (VAL_TRIPLET_SEED), one
    triplet per image of ``val_idloss`` (IDLossDataset of val_idloss.csv) is drawn: the
    image as anchor, a random same-id positive, a random other-id negative. Each epoch the
    val loss is TripletMarginLoss(margin=HANDOUT_MARGIN) over those triplets on the model's
    feature (forward's first output) in eval mode: one definition for every recipe.

    checkpoint_dir: after each epoch, ``last.pt`` (model, optimiser, scheduler, scaler,
    history, cfg, epoch, RNG states) is replaced atomically; resume=True continues from it.
    Ctrl-C returns the history of the completed epochs with interrupted=True (the model is
    reset to the checkpoint when there is one). A NaN/inf loss raises FloatingPointError
    naming the epoch and iteration. Progress bars go to stdout.
    """
    seed_everything(cfg.seed)
    run = build_run(model, cfg, train_set)
    history = History(recipe=cfg.recipe)
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    ours = False  # does ckpt hold this run's state? (an old run's file must not be restored)
    if resume and ckpt is not None and ckpt.exists():
        history, ours = _restore(run, load_checkpoint(ckpt), ckpt), True
        history.interrupted = False
        print(f"Resuming from {ckpt}: {history.epochs_done} of {cfg.epochs} epochs done.")
    elif resume:
        print(f"No checkpoint at {ckpt}; training from scratch.")
    val_triplets = None
    if val_idloss is not None:
        val_triplets = random_triplets(val_idloss.ids.cpu(), torch.Generator().manual_seed(VAL_TRIPLET_SEED))

    start = history.epochs_done
    offset = history.elapsed_seconds[-1] if history.elapsed_seconds else 0.0
    t_start = time.perf_counter()
    bar = tqdm(range(start, cfg.epochs), desc=cfg.recipe, file=sys.stdout, initial=start,
               total=cfg.epochs, disable=not progress, mininterval=1.0)
    epoch = start
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            losses = train_epoch(run, epoch, progress)
            train_seconds = time.perf_counter() - t0
            metrics = evaluate_val(run, val_set, val_idloss, val_triplets) if val_set is not None else {}
            _append_epoch(history, losses, metrics, train_seconds,
                          offset + time.perf_counter() - t_start)
            if ckpt is not None:
                save_checkpoint(ckpt, _checkpoint_state(run, history, epoch + 1))
                ours = True
                history.elapsed_seconds[-1] = offset + time.perf_counter() - t_start
            bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items() if v is not None})
            if cfg.time_budget_s is not None and history.elapsed_seconds[-1] >= cfg.time_budget_s:
                print(f"Time budget of {cfg.time_budget_s:.0f} s reached after epoch {epoch + 1}.")
                break
    except KeyboardInterrupt:
        history = _on_interrupt(run, history, ckpt if ours else None, epoch)
    finally:
        bar.close()
    return history


def _append_epoch(history: History, losses: list[float], metrics: dict[str, float | None],
                  train_seconds: float, elapsed: float) -> None:
    history.iter_loss += losses
    history.epoch_train_loss.append(sum(losses) / max(1, len(losses)))
    for key in ("val_loss", "rank1", "rank5", "rank10", "mAP"):
        getattr(history, key).append(metrics.get(key))
    history.epoch_seconds.append(train_seconds)
    history.elapsed_seconds.append(elapsed)


def _on_interrupt(run: TrainRun, history: History, ckpt: Path | None, epoch: int) -> History:
    """After Ctrl-C: model and history go back to this run's checkpoint, if it has one."""
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        run.model.load_state_dict(state["model"])
        history = History.from_dict(state["history"])
        where = (f"The model is back at the end of epoch {history.epochs_done} ({ckpt}); to "
                 f"continue, call train_model(..., checkpoint_dir={str(ckpt.parent)!r}, resume=True).")
    else:
        where = "No checkpoint of this run was written: the model holds mid-epoch weights."
    history.interrupted = True
    print(f"Interrupted during epoch {epoch + 1}; the history covers {history.epochs_done} "
          f"completed epoch(s). {where}")
    return history
