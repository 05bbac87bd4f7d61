"""Shared fixtures: a tiny hand-written data layout, independent of make_data.py."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def write_jpeg(path: Path, seed: int, size: tuple[int, int] = (64, 128)) -> Path:
    """A small random-colour JPEG (`size` = width, height) at `path`."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = rng.integers(0, 256, size=3)
    arr = np.clip(base + rng.integers(-20, 21, size=(size[1], size[0], 3)), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, quality=95)
    return path


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


@pytest.fixture
def tiny_layout(tmp_path: Path) -> Path:
    """A complete layout by hand: 3 train ids × 2 images, val 12 gallery / 4 queries, test 3 / 2.

    Val has 12 gallery images so that numeric order (2 < 10) differs from text order.
    """
    root = tmp_path / "pa2_data"
    train_rows, trip_rows = [], []
    for ident in range(3):
        for j in range(2):
            name = f"train/{1000 + 10 * ident + j}.jpg"
            write_jpeg(root / name, seed=100 + 10 * ident + j)
            train_rows.append(f"{name},{ident}")
    for ident in range(3):
        a, p = f"train/{1000 + 10 * ident}.jpg", f"train/{1001 + 10 * ident}.jpg"
        n = f"train/{1000 + 10 * ((ident + 1) % 3)}.jpg"
        trip_rows.append(f"{a},{p},{n}")
    write_csv(root / "train_idloss.csv", "filepath,id", train_rows)
    write_csv(root / "train_random_triplet.csv", "anchor,positive,negative", trip_rows)
    for k in range(12):
        write_jpeg(root / f"val/gallery/{k}.jpg", seed=200 + k)
    val_q = {"val/query/5001.jpg": 3, "val/query/5002.jpg": 10, "val/query/5003.jpg": 0, "val/query/5004.jpg": 2}
    for i, q in enumerate(val_q):
        write_jpeg(root / q, seed=300 + i)
    write_csv(root / "val/gt.csv", "query,gallery", [f"{q},val/gallery/{g}.jpg" for q, g in val_q.items()])
    write_csv(root / "val_idloss.csv", "filepath,id",
              [f"val/gallery/{k}.jpg,{k}" for k in range(12)] + [f"{q},{g}" for q, g in val_q.items()])
    for k in range(3):
        write_jpeg(root / f"test/gallery/{k}.jpg", seed=400 + k)
    for i in range(2):
        write_jpeg(root / f"test/query/{7000 + i}.jpg", seed=500 + i)
    write_csv(root / "test/pred.csv", "query,gallery", ["test/query/7001.jpg,", "test/query/7000.jpg,"])
    return root
