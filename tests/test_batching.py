"""Tests of reid/batching.py: P×K batches, shuffled batches, flip, shift and erasing."""
from __future__ import annotations

import torch

from reid.batching import PKSampler, random_erasing, random_flip, random_shift, shuffled_batches


def test_pk_sampler_gives_p_ids_times_k_images():
    ids = torch.tensor([i for i in range(6) for _ in range(5)] + [6, 6, 7])  # ids 6, 7 are short
    sampler = PKSampler(ids, p=4, k=2, generator=torch.Generator().manual_seed(0))
    batches = list(sampler)
    # chunks of K=2: ids 0-5 two each, id 6 one, id 7 one (topped up): 14 -> 14 // 4 = 3 batches
    assert len(batches) == len(sampler) == 3
    for b in batches:
        assert b.shape == (8,)
        counts = torch.bincount(ids[b], minlength=8)
        assert sorted(counts[counts > 0].tolist()) == [2, 2, 2, 2]
    again = list(PKSampler(ids, p=4, k=2, generator=torch.Generator().manual_seed(0)))
    assert all(torch.equal(x, y) for x, y in zip(batches, again))


def test_shuffled_batches_cover_without_repeats():
    bs = shuffled_batches(10, 4, torch.Generator().manual_seed(0))
    assert [len(b) for b in bs] == [4, 4]
    assert len(torch.cat(bs).unique()) == 8
    assert [len(b) for b in shuffled_batches(3, 4, torch.Generator())] == [3]


def test_random_flip_flips_chosen_images():
    x = torch.arange(2 * 1 * 1 * 3, dtype=torch.float).view(2, 1, 1, 3)
    assert torch.equal(random_flip(x, torch.Generator(), p=1.0), x.flip(-1))
    assert torch.equal(random_flip(x, torch.Generator(), p=0.0), x)


def test_random_erasing_stays_on_the_person():
    x = torch.zeros(16, 3, 32, 32)
    x[:, :, :, 8:24] = 1.0  # content in columns 8..23, zero padding either side
    assert torch.equal(random_erasing(x, torch.Generator(), p=0.0), x)
    y = random_erasing(x, torch.Generator().manual_seed(0), p=1.0, scale=(0.1, 0.2))
    erased = (y[:, 0] == 0) & (x[:, 0] == 1)  # [16, 32, 32]
    frac = erased.flatten(1).sum(1) / (32 * 16)  # share of the content area
    assert (frac > 0).all() and (frac <= 0.2 + 1e-6).all()
    assert torch.equal(y[..., :8], x[..., :8]) and torch.equal(y[..., 24:], x[..., 24:])


def test_random_shift_translates_each_image_and_fills_with_zeros():
    """Each image moves by its own (dy, dx) in [-s, s]; what moves in is zero (the padding
    value), what moves out is lost: checked pixel by pixel against a loop."""
    x = torch.randn(6, 3, 10, 8)
    assert random_shift(x, torch.Generator(), 0) is x
    y = random_shift(x, torch.Generator().manual_seed(3), 2)
    seen = set()
    for b in range(6):
        matches = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                ref = torch.zeros_like(x[b])
                # ref[:, i, j] = x[b, :, i - dy, j - dx] where that pixel exists
                ref[:, max(dy, 0):10 + min(dy, 0), max(dx, 0):8 + min(dx, 0)] = \
                    x[b, :, max(-dy, 0):10 - max(dy, 0), max(-dx, 0):8 - max(dx, 0)]
                if torch.equal(y[b], ref):
                    matches.append((dy, dx))
        assert len(matches) == 1, (b, matches)  # exactly one translation explains the image
        seen.add(matches[0])
    assert len(seen) > 1  # the shifts differ between images
    again = random_shift(x, torch.Generator().manual_seed(3), 2)
    assert torch.equal(y, again)  # the generator decides
