"""Non-learned baselines on a layout's val split: how hard is the data?

    python -m bench.baselines DATA_ROOT

Prints val Rank-1/5/10 (from ``val/gt.csv``) of two nearest-neighbour matchers:

* raw pixels: each image resized to 32 x 64, flattened to a [6144] vector, Euclidean distance;
* colour histogram: a joint 8 x 8 x 8 RGB histogram [512] normalised to sum 1, chi-square distance.

Plain numpy/PIL on purpose: it does not depend on the project's ``reid`` package.
Chance level is 1 / (number of gallery images).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
from PIL import Image

RANKS = (1, 5, 10)


def read_pairs(root: Path) -> list[tuple[str, str]]:
    """Rows (query, gallery) of ``root/val/gt.csv``, paths relative to ``root``."""
    path = root / "val" / "gt.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows or [c.strip() for c in rows[0]] != ["query", "gallery"]:
        raise ValueError(f"{path}: expected the header 'query,gallery', got {rows[:1]}")
    return [(q.strip(), g.strip()) for q, g in rows[1:]]


def load_rgb(path: Path) -> Image.Image:
    """An image file as RGB."""
    with Image.open(path) as img:
        return img.convert("RGB")


def pixel_features(paths: list[Path]) -> np.ndarray:
    """Images resized to 32 x 64 (W x H), scaled to [0, 1]: float32 [N, 6144]."""
    return np.stack([np.asarray(load_rgb(p).resize((32, 64), Image.BILINEAR), np.float32).ravel() / 255
                     for p in paths])


def histogram_features(paths: list[Path], bins: int = 8) -> np.ndarray:
    """Joint RGB histograms with ``bins`` levels per channel, each summing to 1: float32 [N, bins**3]."""
    feats = []
    for p in paths:
        q = np.asarray(load_rgb(p), np.int64) * bins // 256          # [H, W, 3] bin per channel
        code = (q[..., 0] * bins + q[..., 1]) * bins + q[..., 2]      # [H, W]
        hist = np.bincount(code.ravel(), minlength=bins ** 3).astype(np.float32)
        feats.append(hist / hist.sum())
    return np.stack(feats)


def euclidean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise Euclidean distances of rows: [Q, D], [G, D] -> [Q, G]."""
    sq = (a ** 2).sum(1)[:, None] + (b ** 2).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def chi_square(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise chi-square distances 0.5 * sum (x - y)^2 / (x + y) of histograms: [Q, D], [G, D] -> [Q, G]."""
    out = np.empty((len(a), len(b)), np.float32)
    for i, x in enumerate(a):                                          # one query row at a time: [G, D]
        s = x[None, :] + b
        out[i] = 0.5 * np.where(s > 0, (x[None, :] - b) ** 2 / np.where(s > 0, s, 1), 0).sum(1)
    return out


def rank_k(dist: np.ndarray, truth: np.ndarray, ks: tuple[int, ...] = RANKS) -> dict[int, float]:
    """Share of queries whose true gallery column is among the k smallest distances.

    dist: [Q, G]; truth: [Q] gallery column of each query. Ties count against the query.
    """
    rank = (dist < dist[np.arange(len(truth)), truth][:, None]).sum(1)   # [Q] 0-based rank
    rank += (dist == dist[np.arange(len(truth)), truth][:, None]).sum(1) - 1
    return {k: float((rank < k).mean()) for k in ks}


def evaluate(root: Path) -> dict[str, dict[int, float]]:
    """Rank-k of both baselines on ``root``'s val split."""
    pairs = read_pairs(root)
    gallery = sorted({g for _, g in pairs})
    column = {g: i for i, g in enumerate(gallery)}
    queries = [root / q for q, _ in pairs]
    truth = np.array([column[g] for _, g in pairs])
    gal = [root / g for g in gallery]
    return {
        "raw pixels 32x64, Euclidean": rank_k(euclidean(pixel_features(queries), pixel_features(gal)), truth),
        "RGB histogram 8x8x8, chi-square": rank_k(chi_square(histogram_features(queries),
                                                             histogram_features(gal)), truth),
    }


def main(argv: list[str] | None = None) -> int:
    """Print the table for DATA_ROOT."""
    parser = argparse.ArgumentParser(description="val Rank-k of raw-pixel and colour-histogram NN")
    parser.add_argument("root", type=Path, help="data root holding val/gt.csv")
    root = parser.parse_args(argv).root
    pairs = read_pairs(root)
    n_gallery = len({g for _, g in pairs})
    print(f"{root}: {len(pairs)} val queries, {n_gallery} gallery images, chance Rank-1 = {1 / n_gallery:.3f}")
    for name, scores in evaluate(root).items():
        print(f"  {name:34s} " + "  ".join(f"Rank-{k} {v:.3f}" for k, v in scores.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
