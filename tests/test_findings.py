"""Tests for reid/stats.py and reid/findings.py: the bootstrap, the paired comparison, and Q9 / Q11's
computed sentences on hand-made distances and histories whose answers are known by hand."""
from __future__ import annotations

import random

import pytest
import torch

from reid.evaluate import Retrieval
from reid import text as textmod
from reid.findings import (brightness, clothing_colour, compare_handout_models, describe_comparison,
                           describe_ranked_rows, describe_row_facts, padding_share, ranked_rows, row_facts,
                           HUB_QUERIES, colour_split, hubs, is_hub)
from reid.images import IMAGENET_MEAN, IMAGENET_STD
from reid.stats import bootstrap_interval, paired_comparison
from reid.train import History


def test_bootstrap_interval_is_a_percentile_interval_of_resampled_means():
    """The same values give the same interval; constant values give a point; the ends are the k-th
    smallest and largest of the resampled means (a resampling written out here)."""
    v = [0.3, -0.1, 0.05, 0.2, -0.02]
    rng = random.Random(7)
    means = sorted(sum(rng.choices(v, k=5)) / 5 for _ in range(200))
    assert bootstrap_interval(v, 0.9, 200, seed=7) == (means[10], means[189])
    assert bootstrap_interval(v) == bootstrap_interval(v) and bootstrap_interval([0.25] * 4) == (0.25, 0.25)
    lo, hi = bootstrap_interval(v)
    assert min(v) <= lo < sum(v) / 5 < hi <= max(v)


def test_paired_comparison_words():
    ahead = paired_comparison([1.0] * 40, [0.0] * 20 + [1.0] * 20)
    assert ahead[0] == "ahead" and ahead[1] == pytest.approx(0.5) and ahead[2][0] > 0
    assert paired_comparison([0.0] * 30, [1.0] * 30)[0] == "behind"
    same = [1.0, 0.0] * 20
    assert paired_comparison(same, same) == ("level", 0.0, (0.0, 0.0))
    assert paired_comparison([1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0])[0] == "level"  # one win each way
    with pytest.raises(ValueError, match="equally long"):
        paired_comparison([1.0], [1.0, 0.0])


def _retrieval() -> Retrieval:
    """3 queries, 4 gallery images, distances set by hand (through a precomputed matrix)."""
    r = Retrieval.from_features(torch.zeros(3, 2), torch.zeros(4, 2), torch.tensor([0, 1, 2]))
    r.dist = torch.tensor([[0.2, 0.5, 0.9, 0.7],    # query 0: hit, nearest wrong gallery 1 at 0.5
                           [0.4, 0.6, 0.9, 0.1],    # query 1: match (1) at rank 3 behind gallery 3 and 0
                           [0.8, 0.7, 0.9, 0.3]])   # query 2: match (2) last, gallery 3 first
    return r


def test_ranked_rows_by_hand():
    rows = ranked_rows(_retrieval(), [0, 1, 2])
    assert [r["match_rank"] for r in rows] == [1, 3, 4]
    assert [r["nearest_wrong"] for r in rows] == [1, 3, 3]
    assert rows[1]["match_distance"] == 0.6 and rows[1]["nearest_wrong_distance"] == 0.1
    assert [r["wrong_top1_of"] for r in rows] == [0, 2, 2]   # gallery 3 is the wrong top-1 of queries 1 and 2
    printed = describe_ranked_rows(rows, _retrieval())
    assert max(len(line) for line in printed.splitlines()) <= textmod.LINE_WIDTH
    text = " ".join(printed.split())
    assert "row 1 (query 0): hit — the match (gallery 0) is nearest, 0.300 ahead of gallery 1" in text
    assert "row 2 (query 1): near miss — the match (gallery 1) at rank 3, 0.500 behind gallery 3 (the wrong top-1 of 2 queries)" in text
    assert "Of the 3 rows, 1 are hits and 2 misses" in text and "ranks 3, 4" in text
    assert "1 gallery images are the wrong top-1 of two or more queries, most often gallery 3 (2 queries)" in text


def _history(rank1_hits: list[list[int]]) -> History:
    """A history whose epoch e has the given per-query rank-1 hits (1 = hit)."""
    ranks = [[1 if h else 5 for h in hits] for hits in rank1_hits]
    return History(recipe="x", rank1=[sum(h) / len(h) for h in rank1_hits], mAP=[sum(h) / len(h) for h in rank1_hits],
                   match_rank=ranks, epoch_train_loss=[1.0] * len(ranks))


def test_q11_compares_at_equal_epochs_images_and_as_kept():
    n = 60
    id_hist = _history([[0] * n, [1] * 20 + [0] * 40, [1] * 30 + [0] * 30])      # 0, 1/3, 1/2
    tri_hist = _history([[0] * n, [1] * 20 + [0] * 40, [1] * 60])                 # 0, 1/3, 1
    rows = compare_handout_models(id_hist, tri_hist, id_images_per_epoch=100, tri_images_per_epoch=300)
    same, images, kept = rows
    assert (same["id_epoch"], same["triplet_epoch"], same["word"]) == (3, 3, "ahead")
    # the ID model's 3 epochs saw 300 images: the triplet model's epoch 1 saw as many
    assert (images["triplet_epoch"], images["id_images"], images["triplet_images"]) == (1, 300, 300)
    assert images["word"] == "behind"
    assert (kept["id_epoch"], kept["triplet_epoch"]) == (3, 3)
    text = " ".join(describe_comparison(rows).split())
    assert "the triplet model is ahead" in text and "the triplet model is behind" in text
    assert "300 images against 300" in text


def test_q11_says_when_ranks_were_not_recorded():
    h = History(recipe="x", rank1=[0.1, 0.2], mAP=[0.1, 0.2], epoch_train_loss=[1.0, 1.0])
    rows = compare_handout_models(h, h, 10, 30)
    assert all(r["word"] == "not measured" for r in rows)
    assert "not recorded, so no verdict" in " ".join(describe_comparison(rows).split())


def test_epoch_by_epoch_counts_where_each_curve_is_higher():
    from reid.findings import epoch_by_epoch

    text = " ".join(epoch_by_epoch([0.1, 0.2, 0.3, 0.5], [0.2, 0.3, 0.3, 0.4]).split())
    assert text == ("Epoch by epoch (val Rank-1 after each of the 4 epochs both models ran): the triplet model "
                    "was higher at 2 of them, the ID model at 1, the two equal at 1; the last epoch with the triplet model higher: 2.")
    # higher throughout: no "last epoch" clause; epochs one model did not validate are left out
    text = " ".join(epoch_by_epoch([0.1, None, 0.2], [0.3, 0.4, 0.5]).split())
    assert text.endswith("each of the 2 epochs both models ran): the triplet model was higher at 2 of them, the ID model at 0.")
    assert epoch_by_epoch([], []) == "Epoch by epoch: no epoch validated by both models."


def _person(top: tuple[int, int, int], bottom: tuple[int, int, int], width: int = 8) -> torch.Tensor:
    """A normalised 16×16 frame: a person `width` columns wide, `top` colour over `bottom` (RGB 0–255),
    zero padding either side."""
    x = torch.zeros(3, 16, 16)
    lo = (16 - width) // 2
    for rows, rgb in ((slice(0, 8), top), (slice(8, 16), bottom)):
        for c in range(3):
            x[c, rows, lo:lo + width] = (rgb[c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
    return x


def test_image_facts_by_hand():
    img = _person((200, 0, 0), (0, 0, 100))
    assert clothing_colour(img) == pytest.approx(torch.tensor([200.0, 0, 0, 0, 0, 100]), abs=0.5)
    assert padding_share(img) == pytest.approx(0.5)
    assert brightness(img) == pytest.approx((0.299 * 200 + 0.114 * 100) / 2, abs=0.5)


def test_each_row_says_which_measured_fact_explains_it():
    """Query 0 is a hit. Query 1's match wears other colours at the same brightness and its wrong top-1
    wears the query's own (a colour lookalike); query 2's match is the same look, much darker (a lighting
    change, which comes first: a camera's light also moves the colours); query 3's match looks exactly
    like it, yet ranks behind another image that also does, and a hub for no other query: nothing
    measured explains that."""
    red_blue, dark = _person((200, 0, 0), (0, 0, 100)), _person((90, 0, 0), (0, 0, 45))
    swapped = _person((0, 0, 100), (200, 0, 0))   # as bright as red_blue, its colours the other way up
    queries = torch.stack([red_blue, red_blue, red_blue, swapped])
    gallery = torch.stack([red_blue, swapped, dark, swapped])  # gallery k is query k's match
    r = Retrieval.from_features(torch.zeros(4, 2), torch.zeros(4, 2), torch.tensor([0, 1, 2, 3]))
    r.dist = torch.tensor([[0.1, 0.9, 0.8, 0.5],
                           [0.2, 0.7, 0.8, 0.5],    # gallery 0 before its match 1
                           [0.2, 0.7, 0.8, 0.5],    # gallery 0 before its match 2
                           [0.9, 0.2, 0.8, 0.5]])   # gallery 1 (as it looks) before its match 3: no hub
    far = torch.full((4, 2), 10.0)                  # the mirrored gallery: no nearer than as it is
    rows = row_facts(r, [0, 1, 2, 3], queries, gallery, mirrored_gallery=far)
    assert [x["cause"] for x in rows] == ["a hit", "a colour lookalike",
                                          "a lighting change", "none of the measured facts"]
    assert rows[2]["brightness_ratio"] == pytest.approx(0.45, abs=0.01)
    lines = " ".join(describe_row_facts(rows).split())
    assert "why: a colour lookalike: gallery 0's clothes are 0 from the query's in RGB, the match's" in lines
    assert "why: a lighting change: the match is 55% darker than the query" in lines
    assert "why: none of the measured facts explains it" in lines


def test_a_miss_to_a_hub_is_the_features_fault():
    """A miss that no image fact explains, whose wrong top-1 is the wrong top-1 of HUB_QUERIES or more val
    queries, is a hub; with fewer it is still "none of the measured facts"."""
    img = _person((200, 0, 0), (0, 0, 100))
    n = HUB_QUERIES + 1
    queries, gallery = img.expand(n, -1, -1, -1), img.expand(n + 1, -1, -1, -1)   # every image alike
    r = Retrieval.from_features(torch.zeros(n, 2), torch.zeros(n + 1, 2), torch.arange(1, n + 1))
    r.dist = torch.ones(n, n + 1)
    r.dist[:, 0] = 0.1                                      # gallery 0 is every query's wrong top-1
    far = torch.full((n + 1, 2), 10.0)
    rows = row_facts(r, [0], queries, gallery, mirrored_gallery=far)
    assert rows[0]["wrong_top1_of"] == n and rows[0]["cause"] == "a hub"
    assert f"why: a hub: gallery 0 is the wrong top-1 of {n} val queries" in " ".join(describe_row_facts(rows).split())
    r.dist[: n - HUB_QUERIES + 1, 0] = 5.0                  # now gallery 0 is the wrong top-1 of fewer
    rows = row_facts(r, [n - 1], queries, gallery, mirrored_gallery=far)
    assert rows[0]["wrong_top1_of"] < HUB_QUERIES and rows[0]["cause"] == "none of the measured facts"


def test_a_hub_is_measured_against_the_mean_and_the_hits_split_by_colour():
    """is_hub: at least HUB_FACTOR × the mean count (and HUB_QUERIES); hubs() counts them; colour_split
    gives Rank-1 where the match is nearer in clothing colour than the nearest wrong image, and where not."""
    assert is_hub(10, 4.9) and not is_hub(9, 4.9) and not is_hub(2, 0.5) and is_hub(3, 0.5)
    red, blue = _person((200, 0, 0), (200, 0, 0)), _person((0, 0, 200), (0, 0, 200))
    queries = torch.stack([red, red, blue, blue])
    gallery = torch.stack([red, blue, blue])           # query 0 → gallery 0, 1 → 0, 2 → 1, 3 → 2
    r = Retrieval.from_features(torch.zeros(4, 2), torch.zeros(3, 2), torch.tensor([0, 0, 1, 2]))
    r.dist = torch.tensor([[0.1, 0.5, 0.6],     # hit; the match (red) nearer in colour than gallery 1 (blue)
                           [0.5, 0.1, 0.6],     # miss to gallery 1 (blue); the match (red) nearer in colour
                           [0.5, 0.6, 0.1],     # miss to gallery 2 (blue); the match (blue) only as near
                           [0.5, 0.6, 0.1]])    # hit; the match (blue) nearer than gallery 0 (red)
    split = colour_split(r, queries, gallery)
    assert split == {"nearer": (3, pytest.approx(2 / 3)), "not": (1, 0.0)}
    n_hubs, top, count, mean = hubs(r)
    assert (top, count, mean) == (1, 1, 2 / 3) and n_hubs == 0
