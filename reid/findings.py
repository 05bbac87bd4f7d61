"""Q9 and Q11 in numbers: what the notebook's sentences about the ranked results and about the two
handout models say, computed from what is shown, so a sentence cannot contradict its figure.

* Q9 (the ID model's ranked results): :func:`ranked_rows` measures each shown query — the rank of its
  match, the distance to the match against the distance to the nearest wrong gallery image, and how
  many val queries have that wrong image as their top-1; :func:`describe_ranked_rows` says it in lines.
* Q11 (the triplet model against the ID model): :func:`compare_handout_models` compares them query by
  query (rank-1 hits) at equal epochs, at about equal images seen, and as kept; "ahead", "behind" or
  "level" comes from a paired bootstrap over the val queries (:func:`reid.stats.paired_comparison`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .distance import pairwise_distance
from .evaluate import Retrieval
from .images import IMAGENET_MEAN, IMAGENET_STD
from .stats import paired_comparison
from .text import wrap

__all__ = ["ranked_rows", "row_line", "describe_ranked_rows", "compare_handout_models", "describe_comparison",
           "row_facts", "describe_row_facts", "hubs", "is_hub", "colour_split", "clothing_colour", "brightness", "padding_share"]


def wrong_top1_counts(retrieval: Retrieval) -> Tensor:
    """``[G]``: how many queries have each gallery image as their wrong top-1."""
    top1 = retrieval.ranked(1)[:, 0]
    return torch.bincount(top1[top1 != retrieval.gt], minlength=retrieval.dist.shape[1])


def ranked_rows(retrieval: Retrieval, rows: list[int]) -> list[dict[str, Any]]:
    """One dict per shown query row ``q`` (a val query index): ``match_rank`` (1-based),
    ``match_distance``, ``nearest_wrong`` (the nearest gallery image that is not the match) and its
    distance, and ``wrong_top1_of``: how many val queries have that image as their (wrong) top-1."""
    order = retrieval.ranked(retrieval.dist.shape[1])        # [Q, G], nearest first
    gt = retrieval.gt
    ranks = retrieval.match_ranks()                          # [Q]
    wrong_top1 = wrong_top1_counts(retrieval)                # [G]
    mean = float(wrong_top1.sum()) / max(1, len(wrong_top1))   # misses a gallery image takes on average
    out = []
    for q in rows:
        wrong = int(next(g for g in order[q].tolist() if g != int(gt[q])))
        out.append({"query": int(q), "match": int(gt[q]), "match_rank": int(ranks[q]),
                    "match_distance": round(float(retrieval.dist[q, gt[q]]), 4), "nearest_wrong": wrong,
                    "nearest_wrong_distance": round(float(retrieval.dist[q, wrong]), 4),
                    "wrong_top1_of": int(wrong_top1[wrong]), "wrong_top1_mean": round(mean, 2)})
    return out


def row_line(i: int, r: dict[str, Any]) -> str:
    """One row's line under the ranked-results figure: hit or miss, where the match is, and by how much it
    is ahead of, or behind, the nearest wrong gallery image (feature distance)."""
    gap = r["nearest_wrong_distance"] - r["match_distance"]
    if r["match_rank"] == 1:
        return (f"row {i} (query {r['query']}): hit — the match (gallery {r['match']}) is nearest, {gap:.3f} ahead "
                f"of gallery {r['nearest_wrong']}")
    kind = "near miss" if r["match_rank"] <= 10 else "far miss"
    return (f"row {i} (query {r['query']}): {kind} — the match (gallery {r['match']}) at rank {r['match_rank']}, "
            f"{-gap:.3f} behind gallery {r['nearest_wrong']} (the wrong top-1 of {r['wrong_top1_of']} queries)")


def describe_ranked_rows(rows: list[dict[str, Any]], retrieval: Retrieval) -> str:
    """Lines under the ranked-results figure: each row (:func:`ranked_rows`), then what they show together
    — hits and misses, by how much the nearest wrong image beats the match in a miss, and the gallery
    images that are the wrong top-1 of several val queries."""
    lines = [row_line(i, r) for i, r in enumerate(rows, start=1)]
    hits = [r for r in rows if r["match_rank"] == 1]
    misses = [r for r in rows if r["match_rank"] > 1]
    summary = [f"Of the {len(rows)} rows, {len(hits)} are hits and {len(misses)} misses"]
    if misses:
        near = sum(r["match_rank"] <= 10 for r in misses)
        gaps = [r["match_distance"] - r["nearest_wrong_distance"] for r in misses]
        summary.append(f"{near} of the misses {'has its' if near == 1 else 'have their'} match in the top 10 (ranks "
                       f"{', '.join(str(r['match_rank']) for r in misses)}); in each miss a wrong image is nearer "
                       f"than the match by {min(gaps):.3f} to {max(gaps):.3f}")
    if hits:
        margins = [r["nearest_wrong_distance"] - r["match_distance"] for r in hits]
        summary.append(f"in the hits the match wins by {min(margins):.3f} to {max(margins):.3f}")
    counts = wrong_top1_counts(retrieval)
    if int(counts.sum()):
        top = int(counts.argmax())
        several = int((counts >= 2).sum())
        summary.append(f"over all {len(retrieval.gt)} val queries, {several} gallery images are the wrong top-1 of two "
                       f"or more queries, most often gallery {top} ({int(counts[top])} queries)")
    return wrap("\n".join(lines + ["; ".join(summary) + "."]))


# ------------------------------------------------------------------ Q9: measured image facts
COLOUR_MARGIN = 15.0
"""A wrong image is a colour lookalike when its clothing colour is nearer the query's than the match's by
more than this (RGB units, 0–255)."""
LIGHT_CHANGE = 0.25
"""A lighting change: the match's mean brightness differs from the query's by more than this share."""
MIRROR_GAIN = 0.05
"""A turned pose: the match mirrored is nearer the query (in the model's feature) by more than this share."""
CROP_CHANGE = 0.10
"""A different crop: the share of padding in the frame differs by more than this."""
HUB_FACTOR = 2.0
HUB_QUERIES = 3
"""A hub: the wrong image is the wrong top-1 of at least HUB_FACTOR times as many val queries as a gallery
image is on average (the misses over the gallery size), and of at least HUB_QUERIES — a fact of the
model's feature space (one image near many people), not of the query's image; checked after the image facts."""


def _content(image: Tensor) -> tuple[Tensor, Tensor]:
    """(RGB in 0–255 ``[3, H, W]``, the person's pixels ``[H, W]`` bool) of a normalised image; the padding
    is exact zeros after normalisation (C2 pads after Normalize)."""
    person = image.abs().amax(dim=0) > 0
    rgb = (image.float() * torch.tensor(IMAGENET_STD).view(3, 1, 1) + torch.tensor(IMAGENET_MEAN).view(3, 1, 1))
    return rgb.clamp(0, 1) * 255, person


def clothing_colour(image: Tensor) -> Tensor:
    """Mean RGB (0–255) of the upper and of the lower half of the person's rows: ``[6]``, the colours of
    the top and of the trousers or skirt, roughly."""
    rgb, person = _content(image)
    rows = torch.nonzero(person.any(dim=1)).flatten()
    if len(rows) == 0:
        return torch.zeros(6)
    mid = (int(rows[0]) + int(rows[-1]) + 1) // 2
    halves = []
    for lo, hi in ((int(rows[0]), mid), (mid, int(rows[-1]) + 1)):
        m = person[lo:hi]
        halves.append(rgb[:, lo:hi][:, m].mean(dim=1) if m.any() else torch.zeros(3))
    return torch.cat(halves)


def brightness(image: Tensor) -> float:
    """Mean luminance (0–255, Rec. 601 weights) of the person's pixels."""
    rgb, person = _content(image)
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return float(lum[person].mean()) if person.any() else 0.0


def padding_share(image: Tensor) -> float:
    """Share of the frame that is padding (exact zeros in every channel)."""
    return float((image.abs().amax(dim=0) == 0).float().mean())


def _colour_gap(a: Tensor, b: Tensor) -> float:
    """Distance between two clothing colours, per half (RGB units): ‖a − b‖ / √2."""
    return float((a - b).norm() / 2 ** 0.5)


def row_facts(retrieval: Retrieval, rows: list[int], query_images: Tensor, gallery_images: Tensor,
              mirrored_gallery: Tensor) -> list[dict[str, Any]]:
    """:func:`ranked_rows` with, for each row, measured facts about the query, its match and its wrong top-1
    (the nearest gallery image that is not the match): clothing-colour gaps (query–match, query–wrong),
    the match's brightness against the query's, how much nearer the match is mirrored (``mirrored_gallery``:
    the model's features of the mirrored gallery images ``[G, D]``, measured like ``retrieval``'s), and
    the padding shares; ``cause``: the first fact past its threshold, in words (see the constants)."""
    out = []
    for r in ranked_rows(retrieval, rows):
        q, m, w = query_images[r["query"]], gallery_images[r["match"]], gallery_images[r["nearest_wrong"]]
        cq, cm, cw = clothing_colour(q), clothing_colour(m), clothing_colour(w)
        mirrored = float(pairwise_distance(retrieval.query[r["query"]][None], mirrored_gallery[r["match"]][None],
                                           retrieval.metric)[0, 0])
        facts = {"colour_to_match": round(_colour_gap(cq, cm), 1), "colour_to_wrong": round(_colour_gap(cq, cw), 1),
                 "brightness_ratio": round(brightness(m) / max(brightness(q), 1e-6), 3),
                 "mirrored_gain": round(1 - mirrored / max(r["match_distance"], 1e-9), 3),
                 "padding_query": round(padding_share(q), 3), "padding_match": round(padding_share(m), 3)}
        out.append({**r, **facts, "cause": _cause(r, facts)})
    return out


def _cause(row: dict[str, Any], f: dict[str, float]) -> str:
    """The measured fact that explains a row (the first past its threshold), in a few words."""
    if row["match_rank"] == 1:
        return "a hit"
    if abs(f["brightness_ratio"] - 1) > LIGHT_CHANGE:  # first: a camera's light also moves the colours
        return "a lighting change"
    if f["colour_to_wrong"] + COLOUR_MARGIN < f["colour_to_match"]:
        return "a colour lookalike"
    if f["mirrored_gain"] > MIRROR_GAIN:
        return "a turned pose"
    if abs(f["padding_query"] - f["padding_match"]) > CROP_CHANGE:
        return "a different crop"
    if is_hub(row.get("wrong_top1_of", 0), row.get("wrong_top1_mean", 0.0)):
        return "a hub"
    return "none of the measured facts"


def _why(r: dict[str, Any]) -> str:
    c = r["cause"]
    if c == "a colour lookalike":
        return (f"a colour lookalike: gallery {r['nearest_wrong']}'s clothes are {r['colour_to_wrong']:.0f} from the "
                f"query's in RGB, the match's {r['colour_to_match']:.0f}")
    if c == "a lighting change":
        return (f"a lighting change: the match is {abs(r['brightness_ratio'] - 1):.0%} "
                f"{'brighter' if r['brightness_ratio'] > 1 else 'darker'} than the query")
    if c == "a turned pose":
        return f"a turned pose: the match mirrored is {r['mirrored_gain']:.0%} nearer in the feature"
    if c == "a different crop":
        return (f"a different crop: {r['padding_query']:.0%} of the query's frame is padding, "
                f"{r['padding_match']:.0%} of the match's")
    if c == "a hub":
        return (f"a hub: gallery {r['nearest_wrong']} is the wrong top-1 of {r['wrong_top1_of']} val queries, "
                f"{r['wrong_top1_of'] / r['wrong_top1_mean']:.1f}× a gallery image's mean; no image fact passed "
                f"its threshold (colour "
                f"distance {r['colour_to_match']:.0f} to the match, {r['colour_to_wrong']:.0f} to the hub)")
    if c == "none of the measured facts":
        return (f"none of the measured facts explains it (clothing-colour distance, RGB 0–255: "
                f"{r['colour_to_match']:.0f} to the match, {r['colour_to_wrong']:.0f} to the wrong image; brightness "
                f"×{r['brightness_ratio']:.2f})")
    return (f"{c}, nearest in the feature (clothing-colour distance, RGB 0–255: {r['colour_to_match']:.0f} to the "
            f"match, {r['colour_to_wrong']:.0f} to gallery {r['nearest_wrong']})")


def colour_split(retrieval: Retrieval, query_images: Tensor, gallery_images: Tensor) -> dict[str, Any]:
    """Over every query: Rank-1 where the match is nearer in clothing colour (:func:`clothing_colour`) than
    the nearest wrong gallery image, and where it is not — when the model succeeds, in one measured fact.
    Returns ``{"nearer": (queries, rank1), "not": (queries, rank1)}``."""
    order = retrieval.ranked(retrieval.dist.shape[1])
    gallery = torch.stack([clothing_colour(g) for g in gallery_images])
    groups: dict[str, list[float]] = {"nearer": [], "not": []}
    for q in range(len(order)):
        m = int(retrieval.gt[q])
        row = order[q].tolist()
        w = next(g for g in row if g != m)
        c = clothing_colour(query_images[q])
        nearer = _colour_gap(c, gallery[m]) < _colour_gap(c, gallery[w])
        groups["nearer" if nearer else "not"].append(1.0 if row[0] == m else 0.0)
    return {k: (len(v), sum(v) / len(v) if v else float("nan")) for k, v in groups.items()}


def describe_row_facts(rows: list[dict[str, Any]]) -> str:
    """Two lines per row under the ranked-results figure: where its match is (:func:`row_line`) and the
    measured fact that explains it (or that none does)."""
    return wrap("\n".join(f"{row_line(i, r)}\n  why: {_why(r)}" for i, r in enumerate(rows, start=1)))


def is_hub(count: int, mean: float) -> bool:
    """Whether a gallery image that is the wrong top-1 of ``count`` queries is a hub, ``mean`` being the
    average count over the gallery (see HUB_FACTOR)."""
    return count >= max(HUB_QUERIES, HUB_FACTOR * mean)


def hubs(retrieval: Retrieval) -> tuple[int, int, int, float]:
    """(the gallery images that are hubs (:func:`is_hub`), the most frequent wrong top-1, its count, the mean
    count over the gallery)."""
    counts = wrong_top1_counts(retrieval)
    misses = int(counts.sum())
    if not misses:
        return 0, -1, 0, 0.0
    top, mean = int(counts.argmax()), misses / len(counts)
    return sum(is_hub(int(c), mean) for c in counts), top, int(counts[top]), mean


def _hits(history: Any, epoch: int) -> list[float] | None:
    ranks = history.match_rank[epoch - 1] if 0 < epoch <= len(history.match_rank) else None
    return None if ranks is None else [1.0 if r == 1 else 0.0 for r in ranks]


def _compare(label: str, id_hist: Any, id_epoch: int, tri_hist: Any, tri_epoch: int) -> dict[str, Any]:
    a, b = _hits(tri_hist, tri_epoch), _hits(id_hist, id_epoch)
    row = {"when": label, "id_epoch": id_epoch, "triplet_epoch": tri_epoch,
           "id_rank1": id_hist.rank1[id_epoch - 1], "triplet_rank1": tri_hist.rank1[tri_epoch - 1]}
    if a is None or b is None:
        return {**row, "word": "not measured"}
    word, diff, (lo, hi) = paired_comparison(a, b)
    return {**row, "word": word, "difference": diff, "interval": [lo, hi], "queries": len(a)}


def compare_handout_models(id_hist: Any, tri_hist: Any, id_images_per_epoch: int,
                           tri_images_per_epoch: int) -> list[dict[str, Any]]:
    """Q11: the triplet model against the ID model on the val queries' rank-1 hits, three ways —
    after the same number of epochs (the last epoch both have), after about the same number of
    training images (the ID model's last epoch against the triplet epoch whose images seen come
    nearest to it; a triplet row is three images), and as kept (each model's kept epoch, what the
    tables show). Each gets "ahead" / "behind" / "level" (the triplet model, from a paired bootstrap
    over the queries: ahead or behind only when the 95 % interval of the mean difference excludes 0)."""
    same = min(id_hist.epochs_done, tri_hist.epochs_done)
    id_images = id_hist.epochs_done * id_images_per_epoch
    by_images = min(range(1, tri_hist.epochs_done + 1), key=lambda e: abs(e * tri_images_per_epoch - id_images))
    return [_compare("after the same number of epochs", id_hist, same, tri_hist, same),
            {**_compare("after about the same number of training images", id_hist, id_hist.epochs_done,
                        tri_hist, by_images),
             "id_images": id_images, "triplet_images": by_images * tri_images_per_epoch},
            _compare("as kept (the tables)", id_hist, id_hist.kept_epoch, tri_hist, tri_hist.kept_epoch)]


def epoch_by_epoch(id_rank1: list[float | None], tri_rank1: list[float | None]) -> str:
    """Q11's last line: over the epochs both models validated, at how many each one's val Rank-1 was the
    higher (equal ones counted apart), and the last epoch at which the triplet model's was."""
    pairs = [(e, a, b) for e, (a, b) in enumerate(zip(id_rank1, tri_rank1), start=1)
             if a is not None and b is not None]
    if not pairs:
        return "Epoch by epoch: no epoch validated by both models."
    tri = [e for e, a, b in pairs if b > a]
    ids = sum(a > b for _, a, b in pairs)
    ties = len(pairs) - len(tri) - ids
    last = f"; the last epoch with the triplet model higher: {tri[-1]}" if tri and tri[-1] != pairs[-1][0] else ""
    return wrap(f"Epoch by epoch (val Rank-1 after each of the {len(pairs)} epochs both models ran): the triplet model "
                f"was higher at {len(tri)} of them, the ID model at {ids}" + (f", the two equal at {ties}" if ties else "")
                + f"{last}.")


def describe_comparison(rows: list[dict[str, Any]]) -> str:
    """Q11's sentences from :func:`compare_handout_models`: one line per comparison."""
    lines = []
    for r in rows:
        images = (f"; {r['id_images']:,} images against {r['triplet_images']:,}" if "id_images" in r else "")
        head = (f"{r['when'].capitalize()} (ID epoch {r['id_epoch']}, triplet epoch {r['triplet_epoch']}{images}): "
                f"val Rank-1 {r['id_rank1']:.3f} (ID) against {r['triplet_rank1']:.3f} (triplet)")
        if r["word"] == "not measured":
            lines.append(head + "; the per-query ranks were not recorded, so no verdict.")
            continue
        lo, hi = r["interval"]
        lines.append(f"{head}: the triplet model is {r['word']} (difference {r['difference']:+.3f}, 95 % "
                     f"bootstrap interval over the {r['queries']} val queries [{lo:+.3f}, {hi:+.3f}]).")
    return wrap("\n".join(lines))
