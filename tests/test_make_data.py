"""reid.build and make_data.py: the DATA.md protocol on a tiny fake pool, synthetic builds, safety of
writing, the command line."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import make_data
from reid import build, synthetic
from reid.build import (Counts, NotEnoughIdentitiesError, OutputExistsError, PoolImage,
                        build_from_pool, build_synthetic, parse_market_name, plan_layout)
from reid.text import unwrap

SMALL = dict(train_ids=4, val_ids=3, test_ids=3, per_id=4)
ELIGIBLE = list(range(1, 13))      # 12 eligible identities in the fake pool


def _jpeg(seed: int) -> bytes:
    """A small 16 x 32 JPEG of random noise: distinct seeds give distinct bytes."""
    noise = np.random.default_rng(seed).integers(0, 256, (32, 16, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def fake_pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[bytes, tuple[int, int]]]:
    """Market-named crops, and a map from each file's bytes to its (identity, camera).

    Identities 1..12: 5 to 7 images over 2 or 3 cameras (eligible with per_id = 4).
    Not eligible or skipped: distractors 0000 and -1, id 50 (one camera), id 51
    (3 images), and files with other names.
    """
    src = tmp_path_factory.mktemp("pool")
    owner: dict[bytes, tuple[int, int]] = {}
    n = 0

    def add(pid: int, cam: int) -> None:
        nonlocal n
        n += 1
        data = _jpeg(n)
        (src / f"{pid:04d}_c{cam}s1_{n:06d}_01.jpg").write_bytes(data)
        owner[data] = (pid, cam)

    for pid in ELIGIBLE:
        for k in range(5 + pid % 3):
            add(pid, 1 + (k * (pid % 2 + 1)) % (2 + pid % 2))
    for cam in (1, 2, 3):
        add(0, cam)
        add(-1, cam)
    for _ in range(6):
        add(50, 4)
    for cam in (1, 2, 3):
        add(51, cam)
    (src / "readme.txt").write_text("not an image")
    (src / "0007_front.jpg").write_bytes(_jpeg(10_000))
    return src, owner


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``: relative path -> bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_parse_market_name() -> None:
    assert parse_market_name("0002_c1s1_000451_03.jpg") == (2, 1)
    assert parse_market_name("1501_c6s4_001902_01.jpg") == (1501, 6)
    assert parse_market_name("-1_c3s2_012345_00.jpg") == (-1, 3)
    assert parse_market_name("0000_c5s3_000001_04.jpg") == (0, 5)
    assert parse_market_name("Thumbs.db") is None
    assert parse_market_name("0002_front.jpg") is None


def test_pool_build_follows_the_protocol(fake_pool, tmp_path: Path) -> None:
    src, owner = fake_pool
    root = build_from_pool(src, tmp_path / "data", seed=3, **SMALL)
    files = _tree(root)
    who = {rel: owner[data] for rel, data in files.items() if rel.endswith(".jpg")}
    assert all(pid in ELIGIBLE for pid, _ in who.values())      # no distractor, no id 50 / 51

    # train: 4 ids x 4 images, ids 0..3, each id >= 2 cameras, one identity per id
    train = _rows(root / "train_idloss.csv")
    assert train[0] == ["filepath", "id"] and len(train) == 1 + 16
    assert sorted(int(i) for _, i in train[1:]) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert sorted(p for p, _ in train[1:]) == sorted(r for r in files if r.startswith("train/"))
    by_id: dict[str, set] = {}
    for path, i in train[1:]:
        by_id.setdefault(i, set()).add(who[path])
    assert all(len({pid for pid, _ in s}) == 1 and len({c for _, c in s}) >= 2 for s in by_id.values())

    trip = _rows(root / "train_random_triplet.csv")
    label = dict((p, i) for p, i in train[1:])
    assert trip[0] == ["anchor", "positive", "negative"] and len(trip) == 1 + 16
    assert sorted(a for a, _, _ in trip[1:]) == sorted(label)
    for a, p, n in trip[1:]:
        assert a != p and label[a] == label[p] and label[a] != label[n]

    # val and test: galleries 0..G-1; every query has its own identity, another camera
    for split, gt_csv in (("val", "val/gt.csv"), ("test", "test_gt.csv")):
        gallery = sorted(r for r in files if r.startswith(f"{split}/gallery/"))
        assert gallery == sorted(f"{split}/gallery/{k}.jpg" for k in range(3))
        gt = _rows(root / gt_csv)
        assert gt[0] == ["query", "gallery"]
        assert sorted(q for q, _ in gt[1:]) == sorted(r for r in files if r.startswith(f"{split}/query/"))
        for q, g in gt[1:]:
            assert who[q][0] == who[g][0] and who[q][1] != who[g][1]
        assert {g for _, g in gt[1:]} == set(gallery)               # each identity has a query
        assert len({who[g][0] for g in gallery}) == 3
    assert json.loads((root / "BUILD_INFO.json").read_text()) == {
        "source": "pool", "seed": 3, "train_ids": 4, "val_ids": 3, "test_ids": 3, "per_id": 4,
        "pool": src.name}
    pred = _rows(root / "test/pred.csv")
    assert pred[0] == ["query", "gallery"]
    assert [q for q, *_ in pred[1:]] == [q for q, _ in _rows(root / "test_gt.csv")[1:]]
    assert all(g == "" for _, g in pred[1:])
    idloss = _rows(root / "val_idloss.csv")
    expected = [[g, g.split("/")[-1][:-4]] for g in sorted(r for r in files if r.startswith("val/gallery/"))]
    expected += [[q, g.split("/")[-1][:-4]] for q, g in _rows(root / "val/gt.csv")[1:]]
    assert idloss[0] == ["filepath", "id"] and sorted(idloss[1:]) == sorted(expected)
    # identities are disjoint across splits
    ids = {s: {who[r][0] for r in who if r.startswith(s + "/")} for s in ("train", "val", "test")}
    assert not (ids["train"] & ids["val"]) and not (ids["train"] & ids["test"]) and not (ids["val"] & ids["test"])


def test_file_names_are_anonymous_and_bytes_copied(fake_pool, tmp_path: Path) -> None:
    src, owner = fake_pool
    root = build_from_pool(src, tmp_path / "data", seed=1, **SMALL)
    for rel, data in _tree(root).items():
        name = rel.split("/")[-1]
        if rel.startswith(("train/", "val/query/", "test/query/")):
            assert re.fullmatch(r"\d{8}\.jpg", name), rel
        elif "/gallery/" in rel:
            assert re.fullmatch(r"\d+\.jpg", name), rel
        if rel.endswith(".jpg"):
            assert data in owner                                   # JPEG bytes copied as they are
    text = "".join((root / c).read_text() for c in ("train_idloss.csv", "val/gt.csv", "test_gt.csv"))
    assert "_c1s1_" not in text and "_c2s1_" not in text


def test_picked_images_always_span_two_cameras() -> None:
    """Identity 1 has 9 images in camera 1 and one in camera 2: the camera-2 one must be picked."""
    pool = [PoolImage(1, 1, Path(f"a{i}.jpg")) for i in range(9)] + [PoolImage(1, 2, Path("b.jpg"))]
    pool += [PoolImage(pid, 1 + i % 2, Path(f"p{pid}_{i}.jpg")) for pid in (2, 3, 4) for i in range(4)]
    for seed in range(20):
        layout = plan_layout(pool, Counts(train_ids=2, val_ids=1, test_ids=1, per_id=4), seed)
        assert any(it.source == Path("b.jpg") for it in layout.files.values())
        for pid in (1, 2, 3, 4):
            items = [it for it in layout.files.values() if it.pid == pid]
            assert len({it.cam for it in items}) >= 2
        gallery = {rel: it for rel, it in layout.files.items() if "/gallery/" in rel}
        for rel, it in layout.files.items():
            if "/query/" in rel:
                g = next(g for g in gallery.values() if g.pid == it.pid)
                assert it.cam != g.cam and it.pid == g.pid


def test_same_seed_same_bytes_other_seed_differs(fake_pool, tmp_path: Path) -> None:
    src, _ = fake_pool
    a = _tree(build_from_pool(src, tmp_path / "a", seed=5, **SMALL))
    b = _tree(build_from_pool(src, tmp_path / "b", seed=5, **SMALL))
    c = _tree(build_from_pool(src, tmp_path / "c", seed=6, **SMALL))
    assert a == b and a != c
    s1 = _tree(build_synthetic(tmp_path / "s1", seed=2, **SMALL))
    s2 = _tree(build_synthetic(tmp_path / "s2", seed=2, **SMALL))
    s3 = _tree(build_synthetic(tmp_path / "s3", seed=3, **SMALL))
    assert s1 == s2 and s1 != s3


def test_worker_processes_draw_the_same_bytes(tmp_path: Path, monkeypatch) -> None:
    serial = _tree(build_synthetic(tmp_path / "serial", seed=4, **SMALL))
    monkeypatch.setattr(build, "_PARALLEL_MIN", 1)
    monkeypatch.setattr(build.os, "cpu_count", lambda: 2)
    started, real = [], build.ProcessPoolExecutor
    monkeypatch.setattr(build, "ProcessPoolExecutor", lambda *a, **k: started.append(1) or real(*a, **k))
    assert _tree(build_synthetic(tmp_path / "workers", seed=4, **SMALL)) == serial
    assert started == [1]


def test_not_enough_identities_says_how_many(fake_pool, tmp_path: Path) -> None:
    src, _ = fake_pool
    with pytest.raises(NotEnoughIdentitiesError, match=r"12 eligible.*needs 16"):
        build_from_pool(src, tmp_path / "data", train_ids=10, val_ids=3, test_ids=3, per_id=4)
    assert not (tmp_path / "data").exists()
    with pytest.raises(NotEnoughIdentitiesError, match=r"0 eligible"):   # nobody has 8 images
        build_from_pool(src, tmp_path / "data", train_ids=2, val_ids=1, test_ids=1, per_id=8)


def test_non_empty_out_is_refused_unless_forced(fake_pool, tmp_path: Path) -> None:
    src, _ = fake_pool
    out = tmp_path / "data"
    out.mkdir()
    build_from_pool(src, out, **SMALL)                              # an empty folder is fine
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="--force"):
        build_from_pool(src, out, seed=1, **SMALL)
    assert (out / "mine.txt").read_text() == "keep me"
    build_from_pool(src, out, seed=1, force=True, **SMALL)
    assert not (out / "mine.txt").exists() and (out / "val/gt.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]   # no temporary folders left


def test_interrupted_build_leaves_nothing(fake_pool, tmp_path: Path, monkeypatch) -> None:
    src, _ = fake_pool

    def fail(path: Path, rows) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(build, "_write_csv", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        build_synthetic(tmp_path / "data", **SMALL)
    assert list(tmp_path.iterdir()) == []
    old = tmp_path / "old"
    old.mkdir()
    (old / "mine.txt").write_text("keep me")
    with pytest.raises(RuntimeError):
        build_from_pool(src, old, force=True, **SMALL)              # forced, but fails: old tree stays
    assert [p.name for p in tmp_path.iterdir()] == ["old"] and (old / "mine.txt").exists()


def test_synthetic_build_counts_and_cameras(tmp_path: Path) -> None:
    counts = Counts(**SMALL)
    root = build_synthetic(tmp_path / "syn", seed=0, **SMALL)
    files = _tree(root)
    assert json.loads(files["BUILD_INFO.json"])["source"] == "synthetic"
    assert sum(r.startswith("train/") for r in files) == 16
    assert sum(r.startswith("val/gallery/") for r in files) == 3
    assert sum(r.startswith("test/gallery/") for r in files) == 3
    with Image.open(root / "val/gallery/0.jpg") as img:
        assert (img.format, img.mode, img.size) == ("JPEG", "RGB", (64, 128))
    # the same plan the build used: every query's camera differs from its gallery's
    layout = plan_layout(build.synthetic_pool(counts, 0), counts, 0)
    assert sorted(layout.files) == sorted(r for r in files if r.endswith(".jpg"))
    for rel, it in layout.files.items():
        if "/query/" in rel:
            gallery = dict(_rows(root / ("val/gt.csv" if rel.startswith("val") else "test_gt.csv"))[1:])[rel]
            assert layout.files[gallery].pid == it.pid and layout.files[gallery].cam != it.cam
    cams = {it.cam for it in layout.files.values()}
    assert len(cams) >= 2 and cams <= set(range(1, synthetic.N_CAMERAS + 1))


def test_synthetic_images_vary_and_identity_colours_repeat() -> None:
    """Two images of one identity differ (pose, camera); the palette is shared by identities."""
    a = np.asarray(synthetic.render_image(0, 1, 0, 1), np.float32)
    b = np.asarray(synthetic.render_image(0, 1, 1, 2), np.float32)
    assert a.shape == (128, 64, 3) and np.abs(a - b).mean() > 5
    tops = [synthetic.identity_look(0, pid).top for pid in range(1, 60)]
    nearest = [min(np.abs(np.subtract(t, u)).sum() for j, u in enumerate(tops) if j != i)
               for i, t in enumerate(tops)]
    assert np.median(nearest) < 40                                  # most tops have a near twin


def test_cli_summary_and_errors(fake_pool, tmp_path: Path, capsys) -> None:
    src, _ = fake_pool
    args = ["--train-ids", "4", "--val-ids", "3", "--test-ids", "3", "--per-id", "4"]
    assert make_data.main(["pool", str(src), str(tmp_path / "d"), *args]) == 0
    out = unwrap(capsys.readouterr().out)
    assert "16 train images" in out and "val 3 gallery" in out
    assert make_data.main(["pool", str(src), str(tmp_path / "d"), *args]) == 2
    assert "--force" in capsys.readouterr().err
    assert make_data.main(["pool", str(src), str(tmp_path / "e"), "--train-ids", "20", "--per-id", "4"]) == 2
    assert "12 eligible" in capsys.readouterr().err


def test_default_market_pool_follows_the_environment(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(build.MARKET_POOL_ENV, str(tmp_path))
    assert build.default_market_pool() == tmp_path
    monkeypatch.setenv(build.MARKET_POOL_ENV, str(tmp_path / "missing"))
    shared = Path(build.__file__).resolve().parents[2] / "shared/data/market1501-train"
    assert build.default_market_pool() == (shared if shared.is_dir() else None)


def test_default_layout_from_the_real_pool(tmp_path: Path) -> None:
    pool = build.default_market_pool()
    if pool is None:
        pytest.skip(f"no Market-1501 pool: set ${build.MARKET_POOL_ENV} or provide "
                    "../shared/data/market1501-train")
    root = build_from_pool(pool, tmp_path / "market", seed=0)
    assert len(list((root / "train").iterdir())) == 2300
    assert len(_rows(root / "train_idloss.csv")) == 1 + 2300
    assert len(_rows(root / "train_random_triplet.csv")) == 1 + 2300
    for split, gt_csv, n_ids in (("val", "val/gt.csv", 49), ("test", "test_gt.csv", 100)):
        assert len(list((root / split / "gallery").iterdir())) == n_ids
        queries = len(list((root / split / "query").iterdir()))
        assert len(_rows(root / gt_csv)) == 1 + queries and n_ids <= queries <= 9 * n_ids
    assert len(_rows(root / "val_idloss.csv")) == 1 + 49 + len(_rows(root / "val/gt.csv")) - 1
