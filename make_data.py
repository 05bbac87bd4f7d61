"""Build the assignment's data layout (../shared/DATA.md).

Two sources share one protocol:

* ``pool``: a folder of Market-1501-named crops (``0002_c1s1_000451_03.jpg``);
  the JPEG bytes are copied as they are.
* ``synthetic``: the built-in default. Procedurally drawn pedestrians (64 x 128)
  seen by 6 cameras; each identity has its own build and clothing, each camera
  its own scene, lighting and colour cast.

Both first make a *pool* of :class:`PoolImage` (identity, camera, source), then
:func:`plan_layout` chooses identities and images and names every file, and
:func:`write_layout` writes the tree into a temporary folder next to OUT that is
renamed into place, so an interrupted build leaves nothing half-made.

CLI::

    python make_data.py pool SRC OUT [--seed N] [--train-ids 230 --val-ids 49
                                      --test-ids 100 --per-id 10] [--force]
    python make_data.py synthetic OUT [--seed N] [same counts] [--force]
"""
from __future__ import annotations

import argparse
import io
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

MARKET_POOL_ENV = "REID_MARKET_POOL"
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
    csvs: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


# --------------------------------------------------------------------- pools
def parse_market_name(name: str) -> tuple[int, int] | None:
    """``'0002_c1s1_000451_03.jpg'`` -> ``(2, 1)`` (identity, camera); None if not Market-named."""
    m = _MARKET_NAME.match(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def default_market_pool() -> Path | None:
    """$REID_MARKET_POOL, else ``../shared/data/market1501-train`` from the repo root, if it exists."""
    env = os.environ.get(MARKET_POOL_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / "shared/data/market1501-train")
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
    triplets = [("anchor", "positive", "negative")]
    for k, names in enumerate(paths):
        for a, anchor in enumerate(names):
            pos = names[(a + 1 + int(rng.integers(len(names) - 1))) % len(names)]
            other = (k + 1 + int(rng.integers(len(paths) - 1))) % len(paths)
            neg = paths[other][int(rng.integers(len(paths[other])))]
            triplets.append((anchor, pos, neg))
    layout.csvs["train_random_triplet.csv"] = triplets  # type: ignore[assignment]


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


# ----------------------------------------------------------------- drawing
W, H = 64, 128             # output size in pixels, like Market-1501 crops
CW, CH = 2 * W, 2 * H      # drawing canvas: drawn at 2x, then halved (anti-aliasing)
N_CAMERAS = 6
# A small shared palette, so that many identities share clothing colours.
PALETTE = [(28, 28, 32), (232, 232, 226), (128, 128, 132), (32, 42, 92), (62, 112, 192),
           (182, 38, 42), (42, 122, 64), (112, 106, 62), (202, 182, 142), (102, 66, 42),
           (226, 198, 52), (220, 132, 162), (112, 62, 142)]
SKIN = [(238, 204, 178), (214, 170, 134), (174, 124, 90), (118, 80, 56)]
HAIR = [(22, 16, 12), (72, 46, 26), (142, 100, 60), (202, 172, 112), (152, 152, 150)]
PATTERNS = ("plain", "plain", "hstripes", "vstripes", "checks", "print", "yoke", "jacket")
# Per-camera colour gains (R, G, B) and brightness: strong, so colour alone misleads.
CAMERA_GAIN = [(1.3, 1.0, 0.65), (0.7, 0.95, 1.35), (0.9, 1.25, 0.8),
               (1.25, 0.8, 1.2), (1.0, 1.0, 1.0), (1.1, 1.1, 0.85)]
CAMERA_LIGHT = [1.0, 0.9, 0.6, 1.3, 0.75, 1.15]


@dataclass(frozen=True)
class Look:
    """What stays the same for one synthetic identity (colours are RGB triples)."""

    height: float      # person height as a share of the canvas height
    build: float       # width factor, 1 = average
    skin: tuple
    hair: tuple
    long_hair: bool
    top: tuple
    top2: tuple        # second colour of the top's pattern
    pattern: str       # one of PATTERNS
    period: int        # stripe/check period in canvas pixels
    sleeves: str       # "long" | "short" | "none"
    bottom: tuple
    bottom_kind: str   # "long" | "shorts" | "skirt"
    shoes: tuple
    bag: str           # "none" | "backpack" | "shoulder" | "hand"
    bag_colour: tuple
    hat: str           # "none" | "cap" | "beanie"
    hat_colour: tuple


def _colour(rng: np.random.Generator, choices: list) -> tuple:
    """A palette colour with a small per-identity shade jitter."""
    base = np.array(choices[int(rng.integers(len(choices)))], float)
    return tuple(int(v) for v in np.clip(base + rng.normal(0, 8, 3), 0, 255))


def identity_look(seed: int, pid: int) -> Look:
    """The build and clothing of synthetic identity ``pid``."""
    rng = np.random.default_rng([seed, pid, 1])
    pick = lambda options, p=None: options[int(rng.choice(len(options), p=p))]  # noqa: E731
    return Look(
        height=float(rng.uniform(0.78, 0.95)), build=float(rng.uniform(0.8, 1.3)),
        skin=_colour(rng, SKIN), hair=_colour(rng, HAIR), long_hair=bool(rng.random() < 0.3),
        top=_colour(rng, PALETTE), top2=_colour(rng, PALETTE), pattern=pick(PATTERNS),
        period=int(rng.integers(5, 11)), sleeves=pick(("long", "short", "none"), [0.5, 0.4, 0.1]),
        bottom=_colour(rng, PALETTE), bottom_kind=pick(("long", "shorts", "skirt"), [0.65, 0.2, 0.15]),
        shoes=_colour(rng, PALETTE[:4] + PALETTE[8:10]),
        bag=pick(("none", "backpack", "shoulder", "hand"), [0.4, 0.25, 0.2, 0.15]),
        bag_colour=_colour(rng, PALETTE), hat=pick(("none", "cap", "beanie"), [0.7, 0.2, 0.1]),
        hat_colour=_colour(rng, PALETTE))


def identity_cameras(seed: int, pid: int, n: int) -> list[int]:
    """Cameras (1..6) of the ``n`` images of ``pid``: 2 to 4 cameras, each used at least once."""
    rng = np.random.default_rng([seed, pid, 2])
    cams = sorted(int(c) + 1 for c in rng.choice(N_CAMERAS, int(rng.integers(2, 5)), replace=False))
    seq = cams[:n] + [cams[int(rng.integers(len(cams)))] for _ in range(n - len(cams))]
    return [seq[i] for i in rng.permutation(len(seq))]


@lru_cache(maxsize=64)
def camera_scene(seed: int, cam: int) -> np.ndarray:
    """The background a camera sees, larger than the canvas: uint8 [CH + 64, CW + 64, 3]."""
    rng = np.random.default_rng([seed, cam, 3])
    h, w = CH + 64, CW + 64
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.45, 0.75))
    wall, floor = rng.integers(60, 200, 3), rng.integers(50, 170, 3)
    for y in range(0, horizon, 4):
        draw.rectangle([0, y, w, y + 4], fill=tuple(int(c) for c in wall * (0.8 + 0.3 * y / h)))
    draw.rectangle([0, horizon, w, h], fill=tuple(int(c) for c in floor))
    for _ in range(int(rng.integers(3, 8))):      # windows, doors, signs, columns
        x0, y0 = int(rng.integers(-20, w)), int(rng.integers(-20, horizon - 10))
        bw, bh = int(rng.integers(8, 60)), int(rng.integers(10, horizon))
        draw.rectangle([x0, y0, x0 + bw, min(y0 + bh, horizon)],
                       fill=tuple(int(c) for c in rng.integers(20, 240, 3)))
    step = int(rng.integers(12, 40))               # floor tiles or kerb lines
    line = tuple(int(c) for c in np.clip(floor + rng.integers(-50, 50, 3), 0, 255))
    for y in range(horizon + step // 2, h, step):
        draw.line([0, y, w, y], fill=line, width=2)
    if rng.random() < 0.5:
        for x in range(int(rng.integers(0, step)), w, step * 2):
            draw.line([x, horizon, x + (x - w // 2) // 2, h], fill=line, width=2)
    arr = np.asarray(img, np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


def _limb(draw: ImageDraw.ImageDraw, pts: list, colour: tuple, width: float) -> None:
    """A thick poly-line with round ends and joints."""
    draw.line(pts, fill=colour, width=max(1, int(width)), joint="curve")
    r = width / 2
    for x, y in (pts[0], pts[-1]):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _pattern_mask(look: Look, view: str, cx: float, top: float, s: float, sw: float) -> np.ndarray:
    """Where the top shows its second colour: bool [CH, CW]."""
    yy, xx = np.mgrid[0:CH, 0:CW]
    p = look.period
    if look.pattern == "hstripes":
        return (yy // p) % 2 == 0
    if look.pattern == "vstripes":
        return ((xx - int(cx)) // p) % 2 == 0
    if look.pattern == "checks":
        return ((yy // p) + (xx // p)) % 2 == 0
    if look.pattern == "yoke":
        return yy < top + 0.27 * s
    if look.pattern == "print" and view == "front":
        return (xx - cx) ** 2 + (yy - top - 0.32 * s) ** 2 < (0.45 * sw) ** 2
    if look.pattern == "jacket" and view == "front":
        return np.abs(xx - cx) < 0.3 * sw
    return np.zeros((CH, CW), bool)


def draw_person(img: Image.Image, look: Look, rng: np.random.Generator) -> None:
    """Draw one pedestrian of ``look`` on the canvas ``img`` [CH, CW], in a random pose and view."""
    draw = ImageDraw.Draw(img)
    view = ("front", "back", "side")[int(rng.integers(3))]
    facing = 1 if rng.random() < 0.5 else -1
    swing = float(np.sin(rng.uniform(0, 2 * np.pi)))
    s = look.height * CH * rng.uniform(0.9, 1.05)
    cx = CW / 2 + rng.normal(0, 0.04) * CW
    top = CH * rng.uniform(0.97, 1.02) - s
    b = look.build
    head_r, sh_y, hip_y, knee_y, ank_y = 0.062 * s, top + 0.17 * s, top + 0.52 * s, top + 0.73 * s, top + 0.94 * s
    side = view == "side"
    sw, hw = (0.065 * s * b, 0.06 * s * b) if side else (0.12 * s * b, 0.095 * s * b)
    lw, aw = 0.075 * s * b, 0.05 * s * b
    torso = [(cx - sw, sh_y), (cx + sw, sh_y), (cx + hw * 1.05, hip_y + 0.02 * s), (cx - hw * 1.05, hip_y + 0.02 * s)]
    bag_behind = look.bag == "backpack" and side
    if bag_behind:
        x1 = cx - facing * (sw + 0.09 * s)
        draw.rounded_rectangle([min(x1, cx), sh_y + 0.02 * s, max(x1, cx), hip_y - 0.03 * s], 4, fill=look.bag_colour)
    # legs and shoes
    for leg in (-1, 1):
        if side:
            k = leg * swing
            foot = (cx + facing * k * 0.15 * s, ank_y - max(0.0, -k) * 0.03 * s)
            knee = (cx + facing * (k * 0.07 * s + 0.02 * s), knee_y)
            hip = (cx, hip_y)
        else:
            lift = max(0.0, leg * swing) * 0.03 * s
            hip, knee, foot = (cx + leg * hw * 0.5, hip_y), (cx + leg * hw * 0.55, knee_y - lift / 2), (cx + leg * hw * 0.55, ank_y - lift)
        lower = look.skin if look.bottom_kind != "long" else look.bottom
        _limb(draw, [hip, knee, foot], lower, lw * (0.8 if look.bottom_kind != "long" else 1))
        if look.bottom_kind == "shorts":
            _limb(draw, [hip, (knee[0], knee[1] - 0.03 * s)], look.bottom, lw)
        fx, fy = foot
        toe = facing * 0.05 * s if side else 0
        draw.ellipse([fx - lw * 0.6 + min(toe, 0), fy - 0.015 * s, fx + lw * 0.6 + max(toe, 0), fy + 0.04 * s], fill=look.shoes)
    if look.bottom_kind == "skirt":
        draw.polygon([(cx - hw, hip_y - 0.02 * s), (cx + hw, hip_y - 0.02 * s), (cx + hw * 1.5, knee_y), (cx - hw * 1.5, knee_y)], fill=look.bottom)
    else:
        draw.rectangle([cx - hw, hip_y - 0.02 * s, cx + hw, hip_y + 0.07 * s], fill=look.bottom)
    # arms behind (side view), torso with its pattern, arms in front
    arms = []
    for arm in (-1, 1):
        if side:
            k = -arm * swing
            sh = (cx, sh_y + aw * 0.5)
            hand = (cx + facing * k * 0.12 * s, sh_y + 0.33 * s)
            elbow = ((sh[0] + hand[0]) / 2 + facing * 0.01 * s, sh_y + 0.17 * s)
        else:
            sh = (cx + arm * (sw - aw * 0.4), sh_y + aw * 0.5)
            elbow = (cx + arm * (sw + 0.012 * s), sh_y + 0.17 * s)
            hand = (cx + arm * (sw + 0.005 * s), sh_y + 0.33 * s + swing * arm * 0.01 * s)
        arms.append((sh, elbow, hand))
    def draw_arm(sh: tuple, elbow: tuple, hand: tuple) -> None:
        _limb(draw, [sh, elbow, hand], look.skin, aw * 0.85)
        if look.sleeves == "long":
            _limb(draw, [sh, elbow, hand], look.top, aw)
        elif look.sleeves == "short":
            _limb(draw, [sh, ((sh[0] + elbow[0]) / 2, (sh[1] + elbow[1]) / 2)], look.top, aw * 1.1)
        r = aw * 0.55
        draw.ellipse([hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r], fill=look.skin)
        if look.bag == "hand" and hand is arms[1][2]:
            draw.rectangle([hand[0] - 0.05 * s, hand[1], hand[0] + 0.05 * s, hand[1] + 0.11 * s], fill=look.bag_colour)
    if side:
        draw_arm(*arms[0])
    draw.rectangle([cx - 0.025 * s, top + 0.1 * s, cx + 0.025 * s, sh_y + 2], fill=look.skin)
    mask = Image.new("L", (CW, CH))
    ImageDraw.Draw(mask).polygon(torso, fill=255)
    img.paste(look.top, mask=mask)
    pat = np.asarray(mask) > 0
    pat &= _pattern_mask(look, view, cx, top, s, sw)
    img.paste(look.top2, mask=Image.fromarray(pat.astype(np.uint8) * 255))
    if look.bag == "backpack" and view == "back":
        draw.rounded_rectangle([cx - sw * 0.8, sh_y + 0.03 * s, cx + sw * 0.8, hip_y - 0.02 * s], 5, fill=look.bag_colour)
    elif look.bag == "backpack" and view == "front":
        for d in (-1, 1):
            draw.line([cx + d * sw * 0.55, sh_y, cx + d * sw * 0.6, sh_y + 0.22 * s], fill=look.bag_colour, width=3)
    elif look.bag == "shoulder":
        draw.line([cx - sw * 0.7, sh_y, cx + hw * 1.1, hip_y - 0.04 * s], fill=look.bag_colour, width=3)
        draw.rectangle([cx + hw * 0.7, hip_y - 0.06 * s, cx + hw * 0.7 + 0.11 * s, hip_y + 0.05 * s], fill=look.bag_colour)
    for arm in (arms[1:] if side else arms):
        draw_arm(*arm)
    _draw_head(draw, look, view, facing, cx + (facing * 0.01 * s if side else 0), top + head_r * 1.1, head_r, s)


def _draw_head(draw: ImageDraw.ImageDraw, look: Look, view: str, facing: int, hx: float,
               hy: float, r: float, s: float) -> None:
    """Head, hair, face and hat centred at (hx, hy) with radius r (canvas pixels)."""
    box = [hx - r, hy - r * 1.1, hx + r, hy + r * 1.1]
    if look.long_hair and view != "back":
        draw.rectangle([hx - r * 1.05, hy - r * 0.3, hx + r * 1.05, hy + r * 2.2], fill=look.hair)
    draw.ellipse(box, fill=look.skin)
    if view == "back":
        draw.ellipse(box, fill=look.hair)
        if look.long_hair:
            draw.rectangle([hx - r * 1.05, hy, hx + r * 1.05, hy + r * 2.4], fill=look.hair)
    else:
        draw.pieslice([hx - r * 1.08, hy - r * 1.2, hx + r * 1.08, hy + r * 0.9], 180, 360, fill=look.hair)
        eye = (0.02 * s) if view == "front" else 0
        for ex in ((hx - r * 0.4, hx + r * 0.4) if view == "front" else (hx + facing * r * 0.55,)):
            draw.ellipse([ex - eye - 1, hy + r * 0.05, ex + 1, hy + r * 0.05 + 2], fill=(30, 25, 25))
    if look.hat == "cap":
        draw.pieslice([hx - r * 1.1, hy - r * 1.3, hx + r * 1.1, hy + r * 0.7], 180, 360, fill=look.hat_colour)
        bx = facing * r * 1.4 if view == "side" else 0
        draw.rectangle([min(hx - r, hx + bx - r), hy - r * 0.35, max(hx + r, hx + bx + r * 0.3), hy - r * 0.15], fill=look.hat_colour)
    elif look.hat == "beanie":
        draw.chord([hx - r * 1.1, hy - r * 1.6, hx + r * 1.1, hy + r * 0.4], 180, 360, fill=look.hat_colour)


def _occlude(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """Partial occlusion: a low object (bench, car), a pole, or a passer-by at the edge."""
    kind = int(rng.integers(3))
    colour = tuple(int(c) for c in rng.integers(10, 230, 3))
    if kind == 0:
        y = CH * rng.uniform(0.65, 0.85)
        draw.rectangle([-1, y, CW, CH], fill=colour)
    elif kind == 1:
        x, w = CW * rng.uniform(0, 1), rng.uniform(6, 18)
        draw.rectangle([x, -1, x + w, CH], fill=colour)
    else:
        x = CW * (rng.uniform(-0.35, -0.15) if rng.random() < 0.5 else rng.uniform(0.8, 1.0))
        draw.rounded_rectangle([x, CH * 0.15, x + CW * 0.35, CH], 10, fill=colour)


def _apply_camera(arr: np.ndarray, cam: int, rng: np.random.Generator) -> np.ndarray:
    """Camera colour cast, brightness, a light gradient and sensor noise: float [CH, CW, 3] -> uint8."""
    gain = np.array(CAMERA_GAIN[(cam - 1) % N_CAMERAS]) * rng.uniform(0.9, 1.1, 3)
    light = CAMERA_LIGHT[(cam - 1) % N_CAMERAS] * rng.uniform(0.85, 1.15)
    ramp = np.linspace(1 - 0.3 * rng.random(), 1 + 0.1 * rng.random(), CW, dtype=np.float32)[None, :, None]
    ramp = ramp[:, ::-1] if rng.random() < 0.5 else ramp
    arr = arr * (gain * light)[None, None, :] * ramp + rng.normal(0, 3, arr.shape)
    return np.clip(arr, 0, 255).astype(np.uint8)


def render_image(seed: int, pid: int, index: int, cam: int) -> Image.Image:
    """Synthetic image ``index`` of identity ``pid`` seen by camera ``cam``: RGB, 64 x 128."""
    rng = np.random.default_rng([seed, pid, index, 4])
    scene = camera_scene(seed, cam)
    y0, x0 = int(rng.integers(0, scene.shape[0] - CH + 1)), int(rng.integers(0, scene.shape[1] - CW + 1))
    img = Image.fromarray(scene[y0:y0 + CH, x0:x0 + CW])
    draw_person(img, identity_look(seed, pid), rng)
    if rng.random() < 0.25:
        _occlude(ImageDraw.Draw(img), rng)
    img = Image.fromarray(_apply_camera(np.asarray(img, np.float32), cam, rng)).reduce(2)
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.0))))
    return img


def render_jpeg(seed: int, pid: int, index: int, cam: int) -> bytes:
    """:func:`render_image` encoded as JPEG with fixed encoder settings (quality 60..95)."""
    rng = np.random.default_rng([seed, pid, index, 5])
    buf = io.BytesIO()
    render_image(seed, pid, index, cam).save(buf, "JPEG", quality=int(rng.integers(60, 96)),
                                             subsampling=2, optimize=False)
    return buf.getvalue()
# ------------------------------------------------------------------- writing
def image_bytes(item: PoolImage) -> bytes:
    """The encoded file of a pool image: the source bytes, or a freshly drawn JPEG."""
    if isinstance(item.source, Path):
        return item.source.read_bytes()
    return render_jpeg(*item.source)


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
        for rel, item in sorted(layout.files.items()):
            (tmp / rel).write_bytes(image_bytes(item))
        for rel, rows in sorted(layout.csvs.items()):
            _write_csv(tmp / rel, rows)
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
def build_from_pool(src: Path | str, out: Path | str, *, seed: int = 0, train_ids: int = 230,
                    val_ids: int = 49, test_ids: int = 100, per_id: int = 10,
                    force: bool = False) -> Path:
    """Build the layout at ``out`` from a folder of Market-1501-named crops; returns ``out``."""
    counts = Counts(train_ids, val_ids, test_ids, per_id)
    return write_layout(plan_layout(read_pool(Path(src)), counts, seed), Path(out), force)


def synthetic_pool(counts: Counts, seed: int = 0) -> list[PoolImage]:
    """An in-memory pool of ``counts.total_ids`` drawn identities, ``per_id`` images each."""
    pool = []
    for pid in range(1, counts.total_ids + 1):
        cams = identity_cameras(seed, pid, counts.per_id)
        pool += [PoolImage(pid, cam, (seed, pid, i, cam)) for i, cam in enumerate(cams)]
    return pool


def build_synthetic(out: Path | str, *, seed: int = 0, train_ids: int = 230, val_ids: int = 49,
                    test_ids: int = 100, per_id: int = 10, force: bool = False) -> Path:
    """Build the layout at ``out`` from synthetic pedestrians; returns ``out``."""
    counts = Counts(train_ids, val_ids, test_ids, per_id)
    return write_layout(plan_layout(synthetic_pool(counts, seed), counts, seed), Path(out), force)


def summarize(root: Path) -> str:
    """One line of counts of a built layout."""
    def n(pattern: str) -> int:
        return sum(1 for _ in Path(root).glob(pattern))
    return (f"{n('train/*')} train images, val {n('val/gallery/*')} gallery + "
            f"{n('val/query/*')} queries, test {n('test/gallery/*')} gallery + "
            f"{n('test/query/*')} queries")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; prints a summary paragraph at the end."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    pool_p = sub.add_parser("pool", help="build from a folder of Market-1501-named crops")
    pool_p.add_argument("src", type=Path)
    syn_p = sub.add_parser("synthetic", help="build from drawn pedestrians")
    for p in (pool_p, syn_p):
        p.add_argument("out", type=Path)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--train-ids", type=int, default=230)
        p.add_argument("--val-ids", type=int, default=49)
        p.add_argument("--test-ids", type=int, default=100)
        p.add_argument("--per-id", type=int, default=10)
        p.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    args = parser.parse_args(argv)
    kw = dict(seed=args.seed, train_ids=args.train_ids, val_ids=args.val_ids,
              test_ids=args.test_ids, per_id=args.per_id, force=args.force)
    start = time.perf_counter()
    try:
        if args.mode == "pool":
            root = build_from_pool(args.src, args.out, **kw)
            source = f"the pool {args.src}"
        else:
            root = build_synthetic(args.out, **kw)
            source = "synthetic pedestrians"
    except (NotEnoughIdentitiesError, OutputExistsError, FileNotFoundError) as err:
        print(f"make_data.py: error: {err}", file=sys.stderr)
        return 2
    print(f"Built the layout from {source} (seed {args.seed}) in "
          f"{time.perf_counter() - start:.1f} s at {root}: {summarize(root)}; "
          f"{args.train_ids}/{args.val_ids}/{args.test_ids} identities, "
          f"{args.per_id} images picked per identity.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
