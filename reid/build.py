"""Building the assignment's data layout (../shared/DATA.md) from a pool of labelled crops.

Two sources share one protocol:

* a *pool* folder of Market-1501-named crops (``0002_c1s1_000451_03.jpg``); the JPEG
  bytes are copied as they are (:func:`build_from_pool`);
* synthetic pedestrians drawn by ``reid.synthetic`` (:func:`build_synthetic`).

Both first make a pool of :class:`PoolImage` (identity, camera, source), then
:func:`plan_layout` chooses identities and images and names every file, and
:func:`write_layout` writes the tree into a temporary folder next to OUT that is
renamed into place, so an interrupted build leaves nothing half-made. Besides the
layout of DATA.md, the root gets ``BUILD_INFO.json`` (:data:`BUILD_INFO`), which lets
the notebook say whether it runs on synthetic data. ``make_data.py`` is the command line.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reid.synthetic import identity_cameras, render_jpeg

MARKET_POOL_ENV = "REID_MARKET_POOL"
BUILD_INFO = "BUILD_INFO.json"
"""Written at the root of every layout built here, read by ``reid.layout.read_source``: a JSON
object ``{"source": "synthetic" | "pool", "seed": int, "train_ids": int, "val_ids": int,
"test_ids": int, "per_id": int}``, plus ``"pool"`` (the pool folder's name) for pool builds.
A layout without it (the course's zip) is the course's data."""
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)s\d+_\d+_\d+\.(jpe?g|png)$", re.IGNORECASE)


class NotEnoughIdentitiesError(ValueError):
    """The pool has fewer eligible identities than the layout needs."""


class OutputExistsError(FileExistsError):
    """OUT exists and is not empty, and ``force`` was not given."""


@dataclass(frozen=True)
class Counts:
    """How many identities go to each split, and how many images each gets."""

    train_ids: int = 230
    val_ids: int = 49
    test_ids: int = 100
    per_id: int = 10

    def __post_init__(self) -> None:
        if self.train_ids < 2 or self.val_ids < 1 or self.test_ids < 1 or self.per_id < 2:
            raise ValueError(f"need >= 2 train ids (triplet negatives), >= 1 val and test id and "
                             f">= 2 images per id, got {self}")

    @property
    def total_ids(self) -> int:
        return self.train_ids + self.val_ids + self.test_ids


@dataclass(frozen=True)
class PoolImage:
    """One labelled crop: a file to copy, or a synthetic image to draw.

    ``source`` is a file path (pool builds) or ``(seed, pid, index, cam)`` (synthetic).
    """

    pid: int
    cam: int
    source: Path | tuple[int, int, int, int]
    ext: str = ".jpg"


@dataclass
class Layout:
    """Every file and CSV of a layout, before anything is written.

    ``files`` maps a root-relative path (forward slashes) to its pool image;
    ``csvs`` maps a root-relative CSV path to its rows, header first.
    """

    files: dict[str, PoolImage] = field(default_factory=dict)
    csvs: dict[str, list[tuple[str, ...]]] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)   # written as BUILD_INFO.json


# --------------------------------------------------------------------- pools
def parse_market_name(name: str) -> tuple[int, int] | None:
    """``'0002_c1s1_000451_03.jpg'`` -> ``(2, 1)`` (identity, camera); None if not Market-named."""
    m = _MARKET_NAME.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def default_market_pool() -> Path | None:
    """$REID_MARKET_POOL, else ``../shared/data/market1501-train`` from the repo root, if it exists."""
    env = os.environ.get(MARKET_POOL_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2] / "shared/data/market1501-train")
    return next((p for p in candidates if p.is_dir()), None)


def read_pool(src: Path) -> list[PoolImage]:
    """All Market-named crops of ``src`` with identity > 0, sorted by file name."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"pool folder {src} does not exist")
    pool = []
    for path in sorted(src.iterdir()):
        parsed = parse_market_name(path.name)
        if parsed and parsed[0] > 0 and path.is_file():
            pool.append(PoolImage(parsed[0], parsed[1], path, path.suffix.lower()))
    return pool


# ------------------------------------------------------------------ protocol
def _group(pool: list[PoolImage]) -> dict[int, list[PoolImage]]:
    """Pool images by identity, identities ascending, images in pool order."""
    groups: dict[int, list[PoolImage]] = {}
    for item in pool:
        groups.setdefault(item.pid, []).append(item)
    return dict(sorted(groups.items()))


def eligible_ids(pool: list[PoolImage], per_id: int) -> list[int]:
    """Identities with >= ``per_id`` images taken by >= 2 cameras, ascending."""
    return [pid for pid, items in _group(pool).items()
            if len(items) >= per_id and len({i.cam for i in items}) >= 2]


def _pick(items: list[PoolImage], per_id: int, rng: np.random.Generator) -> list[PoolImage]:
    """``per_id`` random images with at least two cameras among them."""
    order = [items[i] for i in rng.permutation(len(items))]
    picked, rest = order[:per_id], order[per_id:]
    if len({i.cam for i in picked}) < 2:
        picked[-1] = next(i for i in rest if i.cam != picked[0].cam)
    return picked


def _names(rng: np.random.Generator, taken: set[str], n: int, ext: str) -> list[str]:
    """``n`` fresh anonymous 8-digit file names (unique within ``taken``)."""
    out = []
    while len(out) < n:
        name = f"{int(rng.integers(0, 10**8)):08d}"
        if name not in taken:
            taken.add(name)
            out.append(name + ext)
    return out


def plan_layout(pool: list[PoolImage], counts: Counts = Counts(), seed: int = 0) -> Layout:
    """Choose identities and images of ``pool`` and name every file (DATA.md protocol).

    Raises NotEnoughIdentitiesError when fewer than ``counts.total_ids`` identities
    have >= ``counts.per_id`` images in >= 2 cameras.
    """
    rng = np.random.default_rng(seed)
    groups = _group(pool)
    ids = eligible_ids(pool, counts.per_id)
    if len(ids) < counts.total_ids:
        raise NotEnoughIdentitiesError(
            f"the pool has {len(ids)} eligible identities (>= {counts.per_id} images in >= 2 "
            f"cameras) but the layout needs {counts.total_ids} "
            f"({counts.train_ids} train + {counts.val_ids} val + {counts.test_ids} test)")
    ids = [ids[i] for i in rng.permutation(len(ids))][:counts.total_ids]
    picked = {pid: _pick(groups[pid], counts.per_id, rng) for pid in ids}
    layout, taken = Layout(), set()
    _plan_train(layout, [picked[p] for p in ids[:counts.train_ids]], rng, taken)
    val = ids[counts.train_ids:counts.train_ids + counts.val_ids]
    _plan_retrieval(layout, "val", [picked[p] for p in val], rng, taken)
    _plan_retrieval(layout, "test", [picked[p] for p in ids[counts.total_ids - counts.test_ids:]],
                    rng, taken)
    return layout


def _plan_train(layout: Layout, groups: list[list[PoolImage]], rng: np.random.Generator,
                taken: set[str]) -> None:
    """train/ images, train_idloss.csv (id 0..n-1) and train_random_triplet.csv."""
    paths: list[list[str]] = []
    for group in groups:
        names = [f"train/{n}" for n in _names(rng, taken, len(group), group[0].ext)]
        layout.files.update(zip(names, group))
        paths.append(names)
    layout.csvs["train_idloss.csv"] = [("filepath", "id")] + [
        (p, str(k)) for k, names in enumerate(paths) for p in names]
    triplets: list[tuple[str, ...]] = [("anchor", "positive", "negative")]
    for k, names in enumerate(paths):
        for a, anchor in enumerate(names):
            pos = names[(a + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            other = (k + 1 + int(rng.integers(len(paths) - 1))) % len(paths)
            neg = paths[other][int(rng.integers(len(paths[other])))]
            triplets.append((anchor, pos, neg))
    layout.csvs["train_random_triplet.csv"] = triplets


def _plan_retrieval(layout: Layout, split: str, groups: list[list[PoolImage]],
                    rng: np.random.Generator, taken: set[str]) -> None:
    """``split``/gallery/k.ext, ``split``/query/..., and the split's CSVs."""
    groups = [groups[i] for i in rng.permutation(len(groups))]
    pairs: list[tuple[str, str]] = []
    idloss: list[tuple[str, str]] = []
    for k, (gallery, *others) in enumerate(groups):
        gpath = f"{split}/gallery/{k}{gallery.ext}"
        layout.files[gpath] = gallery
        idloss.append((gpath, str(k)))
        queries = [o for o in others if o.cam != gallery.cam]
        for item in queries:
            qpath = f"{split}/query/{_names(rng, taken, 1, item.ext)[0]}"
            layout.files[qpath] = item
            pairs.append((qpath, gpath))
            idloss.append((qpath, str(k)))
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    if split == "val":
        layout.csvs["val/gt.csv"] = [("query", "gallery")] + pairs
        layout.csvs["val_idloss.csv"] = [("filepath", "id")] + idloss
    else:
        layout.csvs["test_gt.csv"] = [("query", "gallery")] + pairs
        layout.csvs["test/pred.csv"] = [("query", "gallery")] + [(q, "") for q, _ in pairs]

# ------------------------------------------------------------------- writing
def image_bytes(item: PoolImage) -> bytes:
    """The encoded file of a pool image: the source bytes, or a freshly drawn JPEG."""
    if isinstance(item.source, Path):
        return item.source.read_bytes()
    return render_jpeg(*item.source)


_PARALLEL_MIN = 500   # synthetic images below which drawing stays in this process


def _encoded(items: list[PoolImage]) -> Iterator[bytes]:
    """:func:`image_bytes` of each item, in order.

    Many synthetic images are drawn by up to 4 worker processes; every image is
    seeded by its own (seed, pid, index), so the bytes do not depend on the workers.
    Workers are spawned (not forked: the caller may run torch threads); if they
    cannot start (a script without ``if __name__ == "__main__"``), this process
    draws the rest itself.
    """
    workers = min(4, os.cpu_count() or 1)
    done = 0
    if workers >= 2 and sum(not isinstance(i.source, Path) for i in items) >= _PARALLEL_MIN:
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
        try:
            for data in pool.map(image_bytes, items, chunksize=64):
                done += 1
                yield data
        except BrokenProcessPool:
            print("reid.build: worker processes failed to start; drawing in this process",
                  file=sys.stderr)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    yield from map(image_bytes, items[done:])


def _write_csv(path: Path, rows: list[tuple[str, ...]]) -> None:
    """Plain comma-separated rows, ``\\n`` line ends, no quoting (paths hold no commas)."""
    path.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8", newline="")


def write_layout(layout: Layout, out: Path, force: bool = False) -> Path:
    """Write ``layout`` under a temporary folder next to ``out``, then rename it to ``out``.

    A non-empty ``out`` is refused unless ``force``; with ``force`` it is replaced
    only once the new tree is complete. On any error the temporary folder is removed.
    """
    out = Path(out).absolute()
    if out.exists() and not force and (not out.is_dir() or any(out.iterdir())):
        raise OutputExistsError(f"{out} exists and is not empty; pass --force (force=True) "
                                "to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        for rel in sorted({str(Path(r).parent) for r in [*layout.files, *layout.csvs]}):
            (tmp / rel).mkdir(parents=True, exist_ok=True)
        files = sorted(layout.files.items())
        for (rel, _), data in zip(files, _encoded([item for _, item in files])):
            (tmp / rel).write_bytes(data)
        for rel, rows in sorted(layout.csvs.items()):
            _write_csv(tmp / rel, rows)
        if layout.info:
            (tmp / BUILD_INFO).write_text(json.dumps(layout.info, indent=2, sort_keys=True) + "\n",
                                          encoding="utf-8")
        _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replace(tmp: Path, out: Path) -> None:
    """Rename ``tmp`` to ``out``; an existing ``out`` is moved aside first and then deleted."""
    if not out.exists():
        tmp.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
    out.rename(old / "tree")
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- public API
def _build_info(source: str, seed: int, counts: Counts, **extra: str) -> dict[str, object]:
    """What BUILD_INFO.json records (see :data:`BUILD_INFO`): how the layout was made."""
    return {"source": source, "seed": seed, "train_ids": counts.train_ids, "val_ids": counts.val_ids,
            "test_ids": counts.test_ids, "per_id": counts.per_id, **extra}


def build_from_pool(src: Path | str, out: Path | str, *, seed: int = 0, train_ids: int = 230,
                    val_ids: int = 49, test_ids: int = 100, per_id: int = 10,
                    force: bool = False) -> Path:
    """Build the layout at ``out`` from a folder of Market-1501-named crops; returns ``out``."""
    counts = Counts(train_ids, val_ids, test_ids, per_id)
    layout = plan_layout(read_pool(Path(src)), counts, seed)
    layout.info = _build_info("pool", seed, counts, pool=Path(src).name)
    return write_layout(layout, Path(out), force)


def synthetic_pool(counts: Counts, seed: int = 0) -> list[PoolImage]:
    """An in-memory pool of ``counts.total_ids`` drawn identities, ``per_id`` images each."""
    pool = []
    for pid in range(1, counts.total_ids + 1):
        cams = identity_cameras(seed, pid, counts.per_id)
        pool += [PoolImage(pid, cam, (seed, pid, i, cam)) for i, cam in enumerate(cams)]
    return pool


def write_synthetic_pool(out: Path | str, identities: int, per_id: int = 10, seed: int = 0) -> Path:
    """A folder of drawn pedestrians under Market-1501 names (``0001_c2s1_000003_00.jpg``: identity 1,
    camera 2): a small labelled pool for tests and demonstrations of the pool tools (``make_data.py
    pool``, ``bench.standin_weights``) where no real pool is at hand. Returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    items = synthetic_pool(Counts(train_ids=identities, val_ids=1, test_ids=1, per_id=per_id), seed)
    items = [item for item in items if item.pid <= identities]
    for item, data in zip(items, _encoded(items)):
        _, pid, index, cam = item.source  # type: ignore[misc]
        (out / f"{pid:04d}_c{cam}s1_{index:06d}_00.jpg").write_bytes(data)
    return out


def build_synthetic(out: Path | str, *, seed: int = 0, train_ids: int = 230, val_ids: int = 49,
                    test_ids: int = 100, per_id: int = 10, force: bool = False) -> Path:
    """Build the layout at ``out`` from synthetic pedestrians; returns ``out``."""
    counts = Counts(train_ids, val_ids, test_ids, per_id)
    layout = plan_layout(synthetic_pool(counts, seed), counts, seed)
    layout.info = _build_info("synthetic", seed, counts)
    return write_layout(layout, Path(out), force)


def summarize(root: Path) -> str:
    """One line of counts of a built layout."""
    def n(pattern: str) -> int:
        return sum(1 for _ in Path(root).glob(pattern))
    return (f"{n('train/*')} train images, val {n('val/gallery/*')} gallery + "
            f"{n('val/query/*')} queries, test {n('test/gallery/*')} gallery + "
            f"{n('test/query/*')} queries")
