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

__all__ = ["PKSampler", "shuffled_batches", "random_flip", "random_shift", "random_erasing", "draw_flip",
           "apply_flip", "draw_shift", "apply_shift", "draw_erasing", "apply_erasing", "ERASING_DRAWS"]

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
        order = torch.argsort(self.ids, stable=True)  # [N]: each id's images together, in index order
        _, counts = torch.unique_consecutive(self.ids[order], return_counts=True)
        self.members = list(order.split(counts.tolist()))  # one [n_i] tensor per id, ids ascending
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
# Each augmentation is two steps: ``draw_*`` takes its random numbers for n images from the CPU
# generator (the training loop draws a whole epoch's at once and moves them to the device in one
# copy), ``apply_*`` uses them on a batch where it lives, with no host sync. ``random_*`` does both.
def draw_flip(n: int, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Which of n images to mirror: ``[n]`` bool, each True with probability p."""
    return torch.rand(n, generator=generator) < p


def apply_flip(x: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right the images of x [B, C, H, W] where ``flip`` [B] (bool, on x's device) is
    True (zero padding stays zero padding, so padded crops flip safely)."""
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_flip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of x [B, C, H, W] left-right with probability p."""
    return apply_flip(x, draw_flip(len(x), generator, p).to(x.device))


def draw_shift(n: int, generator: torch.Generator, max_shift: int) -> Tensor:
    """Each image's (dy, dx): ``[2, n]`` int64, each uniform in [-max_shift, max_shift]."""
    return torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator)


def apply_shift(x: Tensor, d: Tensor, max_shift: int) -> Tensor:
    """Translate each image of x [B, C, H, W] by its own (dy, dx) = d[:, b] (``[2, B]`` on x's
    device, each within ±max_shift), filling with zeros (the padding value after normalisation):
    Bag of Tricks' "pad, then random crop back to size", as one gather."""
    if max_shift <= 0:
        return x
    B, _, H, W = x.shape
    s = max_shift
    xp = F.pad(x, (s, s, s, s))  # [B, C, H + 2s, W + 2s]
    rows = torch.arange(H, device=x.device)[None] + s - d[0][:, None]  # [B, H]
    cols = torch.arange(W, device=x.device)[None] + s - d[1][:, None]  # [B, W]
    b = torch.arange(B, device=x.device)[:, None, None]
    out = xp.permute(0, 2, 3, 1)[b, rows[:, :, None], cols[:, None, :]]  # [B, H, W, C]
    return out.permute(0, 3, 1, 2)


def random_shift(x: Tensor, generator: torch.Generator, max_shift: int) -> Tensor:
    """Translate each image of x [B, C, H, W] by its own (dy, dx), each uniform in
    [-max_shift, max_shift] pixels, filling with zeros (:func:`apply_shift`)."""
    if max_shift <= 0:
        return x
    return apply_shift(x, draw_shift(len(x), generator, max_shift).to(x.device), max_shift)


def _content_box(x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-image box (top, height, left, width) [B] each, of the non-padded (non-zero) area, on
    x's device."""
    B, _, H, W = x.shape
    nz = x.detach().abs().amax(dim=1) > 0  # [B, H, W]
    rows, cols = nz.any(dim=2), nz.any(dim=1)  # [B, H], [B, W]

    def span(m: Tensor, size: int) -> tuple[Tensor, Tensor]:
        idx = torch.arange(size, device=m.device)
        first = torch.where(m, idx, size).amin(dim=1)
        last = torch.where(m, idx, -1).amax(dim=1)
        empty = first > last  # an all-zero image: use the whole frame
        return torch.where(empty, 0, first), torch.where(empty, size, last - first + 1)

    top, h = span(rows, H)
    left, w = span(cols, W)
    return top, h, left, w


ERASING_DRAWS = 5
"""Random numbers random erasing takes per image: area, aspect, row, column, whether to erase."""


def draw_erasing(n: int, generator: torch.Generator) -> Tensor:
    """Random erasing's uniform numbers in [0, 1) for n images: ``[ERASING_DRAWS, n]`` float64."""
    return torch.rand(ERASING_DRAWS, n, generator=generator, dtype=torch.float64)


def apply_erasing(x: Tensor, u: Tensor, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.4),
                  ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> Tensor:
    """Random erasing (Zhong et al. 2020) of one rectangle per image of x [B, C, H, W], from the
    uniform numbers u (``[ERASING_DRAWS, B]``, :func:`draw_erasing`, on x's device).

    With probability p, a rectangle of area scale × (content area) and aspect ratio h/w in
    ``ratio`` (log-uniform) is set to ``value`` (0 = the mean colour after normalisation).
    It is placed inside the image's non-zero content box, so it lands on the person, not on
    the zero padding; sides are clipped to the box instead of re-drawing. All on x's device.
    """
    B, _, H, W = x.shape
    top, bh, left, bw = _content_box(x)  # [B] each
    u_area, u_ratio, u_y, u_x, u_apply = u
    area = (bh * bw).double() * (scale[0] + (scale[1] - scale[0]) * u_area)
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    aspect = (lo + (hi - lo) * u_ratio).exp()
    h = torch.sqrt(area * aspect).round().long().clamp(min=1).minimum(bh)  # [B]
    w = torch.sqrt(area / aspect).round().long().clamp(min=1).minimum(bw)  # [B]
    y0 = top + (u_y * (bh - h + 1)).long()  # [B]
    x0 = left + (u_x * (bw - w + 1)).long()  # [B]
    apply = u_apply < p  # [B]
    ys, xs = torch.arange(H, device=x.device), torch.arange(W, device=x.device)
    in_rows = (ys[None] >= y0[:, None]) & (ys[None] < (y0 + h)[:, None])  # [B, H]
    in_cols = (xs[None] >= x0[:, None]) & (xs[None] < (x0 + w)[:, None])  # [B, W]
    mask = in_rows[:, None, :, None] & in_cols[:, None, None, :] & apply[:, None, None, None]
    return x.masked_fill(mask, value)  # mask [B, 1, H, W]


def random_erasing(x: Tensor, generator: torch.Generator, p: float = 0.5,
                   scale: tuple[float, float] = (0.02, 0.4), ratio: tuple[float, float] = (0.3, 3.3),
                   value: float = 0.0) -> Tensor:
    """Random erasing of one rectangle per image of x [B, C, H, W] (:func:`apply_erasing`)."""
    return apply_erasing(x, draw_erasing(len(x), generator).to(x.device), p, scale, ratio, value)
