"""Batches for training: P×K sampling, shuffled batches, and batch augmentation (flip, shift, erasing).

Map:
  * P×K batches (stronger recipe, mined triplets) ... PKSampler
  * shuffled full batches (ID loss, listed triplets) . shuffled_batches
  * augmentation of a batch [B, 3, H, W] ............. random_flip, random_shift, random_erasing

All randomness comes from the CPU ``torch.Generator`` the caller passes (the training loop's,
seeded with ``TrainConfig.seed`` and checkpointed), so a run repeats number for number.
"""
from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PKSampler", "shuffled_batches", "random_flip", "random_shift", "random_erasing"]

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
