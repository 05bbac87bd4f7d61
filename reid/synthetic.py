"""Synthetic pedestrians: procedurally drawn people (64 x 128) seen by 6 cameras.

Each identity has its own build and clothing (:func:`identity_look`), each camera its own
scene, lighting and colour cast (:func:`camera_scene`, :func:`_apply_camera`). Every image
is seeded by its own (seed, identity, index), so :func:`render_jpeg` gives the same bytes
whichever process draws it. ``reid.build`` turns these into the data layout.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

W, H = 64, 128             # output size in pixels, like Market-1501 crops
CW, CH = 2 * W, 2 * H      # drawing canvas: drawn at 2x, then halved (anti-aliasing)
N_CAMERAS = 6
# A small shared palette, so that many identities share clothing colours.
PALETTE = [(28, 28, 32), (232, 232, 226), (128, 128, 132), (32, 42, 92), (62, 112, 192),
           (182, 38, 42), (42, 122, 64), (112, 106, 62), (202, 182, 142), (102, 66, 42),
           (226, 198, 52), (220, 132, 162), (112, 62, 142)]
SKIN = [(238, 204, 178), (214, 170, 134), (174, 124, 90), (118, 80, 56)]
HAIR = [(22, 16, 12), (72, 46, 26), (142, 100, 60), (202, 172, 112), (152, 152, 150)]
PATTERNS = ("plain", "plain", "plain", "hstripes", "vstripes", "checks", "print", "yoke", "jacket")
# Per camera: colour gains (R, G, B), brightness and saturation. Strong on purpose:
# a query is never seen by its gallery image's camera, so colour alone misleads.
CAMERA_GAIN = [(1.22, 1.0, 0.74), (0.78, 0.95, 1.28), (0.9, 1.18, 0.82),
               (1.18, 0.86, 1.12), (1.0, 1.0, 1.0), (1.08, 1.06, 0.86)]
CAMERA_LIGHT = [1.0, 0.9, 0.65, 1.25, 0.78, 1.12]
CAMERA_SATURATION = [1.05, 0.85, 1.0, 0.65, 1.15, 0.9]
RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Look:
    """What stays the same for one synthetic identity (colours are RGB triples)."""

    height: float      # person height as a share of the canvas height
    build: float       # width factor, 1 = average
    skin: RGB
    hair: RGB
    hair_style: str    # "short" | "long" | "bun"
    top: RGB
    top2: RGB          # second colour of the top's pattern
    pattern: str       # one of PATTERNS
    period: int        # stripe/check period in canvas pixels
    sleeves: str       # "long" | "short" | "none"
    bottom: RGB
    bottom_kind: str   # "long" | "shorts" | "skirt"
    shoes: RGB
    bag: str           # "none" | "backpack" | "shoulder" | "hand"
    bag_colour: RGB
    hat: str           # "none" | "cap" | "beanie"
    hat_colour: RGB


@dataclass(frozen=True)
class Pose:
    """Where and how one figure stands on the canvas (canvas pixels)."""

    view: str          # "front" | "back" | "side"
    facing: int        # +1 walks to the right, -1 to the left (side view)
    swing: float       # gait phase as sin(angle), in [-1, 1]
    s: float           # full height
    cx: float          # centre line
    top: float         # top of the head


def _colour(rng: np.random.Generator, choices: list[RGB]) -> RGB:
    """A palette colour with a small per-identity shade jitter."""
    base = np.array(choices[int(rng.integers(len(choices)))], float)
    r, g, b = (int(v) for v in np.clip(base + rng.normal(0, 5, 3), 0, 255))
    return r, g, b


@lru_cache(maxsize=4096)
def identity_look(seed: int, pid: int) -> Look:
    """The build and clothing of synthetic identity ``pid`` (a non-negative int)."""
    rng = np.random.default_rng([seed, pid, 1])

    def pick(options: tuple, p: list[float] | None = None):
        return options[int(rng.choice(len(options), p=p))]

    return Look(
        height=float(rng.uniform(0.84, 0.97)), build=float(rng.uniform(0.8, 1.3)),
        skin=_colour(rng, SKIN), hair=_colour(rng, HAIR),
        hair_style=pick(("short", "long", "bun"), [0.6, 0.3, 0.1]),
        top=_colour(rng, PALETTE), top2=_colour(rng, PALETTE), pattern=pick(PATTERNS),
        period=int(rng.integers(5, 11)), sleeves=pick(("long", "short", "none"), [0.45, 0.45, 0.1]),
        bottom=_colour(rng, PALETTE),
        bottom_kind=pick(("long", "shorts", "skirt"), [0.6, 0.25, 0.15]),
        shoes=_colour(rng, PALETTE[:4] + PALETTE[8:10]),
        bag=pick(("none", "backpack", "shoulder", "hand"), [0.4, 0.25, 0.2, 0.15]),
        bag_colour=_colour(rng, PALETTE), hat=pick(("none", "cap", "beanie"), [0.75, 0.17, 0.08]),
        hat_colour=_colour(rng, PALETTE))


def identity_cameras(seed: int, pid: int, n: int) -> list[int]:
    """Cameras (1..6) of the ``n`` images of ``pid``: 2 to 4 cameras, each used at least once."""
    rng = np.random.default_rng([seed, pid, 2])
    cams = sorted(int(c) + 1 for c in rng.choice(N_CAMERAS, int(rng.integers(2, 5)), replace=False))
    seq = cams[:n] + [cams[int(rng.integers(len(cams)))] for _ in range(n - len(cams))]
    return [seq[i] for i in rng.permutation(len(seq))]


def random_pose(look: Look, rng: np.random.Generator, cx: float = CW / 2, scale: float = 1.0) -> Pose:
    """A random view, gait phase, scale and placement of a figure near centre line ``cx``."""
    s = look.height * CH * scale * rng.uniform(0.9, 1.08)
    return Pose(view=("front", "back", "side")[int(rng.integers(3))],
                facing=1 if rng.random() < 0.5 else -1,
                swing=float(np.sin(rng.uniform(0, 2 * np.pi))), s=s,
                cx=cx + rng.normal(0, 0.06) * CW, top=CH * rng.uniform(0.98, 1.04) - s)


# ---- scenes
def _rgb(values) -> RGB:
    r, g, b = (int(v) for v in np.clip(values, 0, 255))
    return r, g, b


def _muted(rng: np.random.Generator, lo: int, hi: int, tint: float = 18) -> RGB:
    """A greyish colour: a grey level in [lo, hi) plus a small tint."""
    return _rgb(rng.integers(lo, hi) + rng.normal(0, tint, 3))


@lru_cache(maxsize=64)
def camera_scene(seed: int, cam: int) -> np.ndarray:
    """The place a camera watches, larger than the canvas: uint8 [CH + 64, CW + 64, 3].

    A wall or building front (windows, doors, columns, a sign) above a paved floor,
    with clutter such as parked bicycles, railings and hedges.
    """
    rng = np.random.default_rng([seed, cam, 3])
    h, w = CH + 64, CW + 64
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    horizon = int(h * rng.uniform(0.35, 0.65))
    wall, floor = np.array(_muted(rng, 80, 200)), _muted(rng, 80, 170, 10)
    for y in range(0, horizon, 4):
        draw.rectangle([0, y, w, y + 4], fill=_rgb(wall * (0.85 + 0.25 * y / horizon)))
    draw.rectangle([0, horizon, w, h], fill=floor)
    for _ in range(int(rng.integers(3, 7))):
        x0, bw = int(rng.integers(-20, w)), int(rng.integers(10, 70))
        kind = int(rng.integers(4))
        if kind == 0:                                   # window with a frame
            y0, bh = int(rng.integers(0, max(1, horizon - 40))), int(rng.integers(20, 60))
            draw.rectangle([x0, y0, x0 + bw, y0 + bh], fill=_muted(rng, 30, 90, 10),
                           outline=_muted(rng, 150, 230), width=3)
        elif kind == 1:                                 # door or column down to the floor
            draw.rectangle([x0, int(rng.integers(0, horizon // 2)), x0 + bw // 2, horizon],
                           fill=_muted(rng, 40, 220))
        elif kind == 2:                                 # shop sign: the one saturated thing
            y0 = int(rng.integers(0, max(1, horizon - 20)))
            draw.rectangle([x0, y0, x0 + bw, y0 + 14], fill=_rgb(rng.integers(30, 240, 3)))
        else:                                           # hedge or tree crown
            cy = horizon - int(rng.integers(0, 30))
            draw.ellipse([x0, cy - bw // 2, x0 + bw, cy + 10], fill=_rgb((40, 90, 45) + rng.normal(0, 15, 3)))
    step, line = int(rng.integers(14, 40)), _rgb(np.array(floor) + rng.integers(-40, 40))
    for y in range(horizon + step // 2, h, step):
        draw.line([0, y, w, y], fill=line, width=2)
    for x in range(int(rng.integers(0, step)), w, 2 * step):
        draw.line([x, horizon, x + (x - w // 2) // 2, h], fill=line, width=2)
    if rng.random() < 0.5:                              # a row of parked bicycles
        y = horizon + int(rng.integers(10, 40))
        for x in range(int(rng.integers(-10, 20)), w, int(rng.integers(22, 40))):
            col = _muted(rng, 10, 120, 30)
            for dx in (0, 22):
                draw.ellipse([x + dx - 9, y - 9, x + dx + 9, y + 9], outline=col, width=2)
            draw.line([x, y, x + 10, y - 12, x + 22, y, x + 10, y - 12, x + 8, y - 20], fill=col, width=2)
    if rng.random() < 0.4:                              # a railing
        y, col = horizon + int(rng.integers(0, 30)), _muted(rng, 20, 200)
        draw.line([0, y - 25, w, y - 25], fill=col, width=3)
        for x in range(0, w, 16):
            draw.line([x, y - 25, x, y], fill=col, width=2)
    arr = np.asarray(img, np.float32) + rng.normal(0, 6, (h, w, 3))
    return np.clip(arr, 0, 255).astype(np.uint8)


# ---- the figure
@dataclass(frozen=True)
class _Body:
    """Heights (y) and half-widths of one figure, from its look and pose (canvas pixels)."""

    head_r: float
    sh_y: float
    hip_y: float
    knee_y: float
    ank_y: float
    sw: float          # shoulder half-width
    hw: float          # hip half-width
    lw: float          # leg width
    aw: float          # arm width


def _body(look: Look, p: Pose) -> _Body:
    s, b = p.s, look.build
    sw, hw = (0.07 * s * b, 0.065 * s * b) if p.view == "side" else (0.115 * s * b, 0.09 * s * b)
    return _Body(0.065 * s, p.top + 0.17 * s, p.top + 0.52 * s, p.top + 0.735 * s,
                 p.top + 0.945 * s, sw, hw, 0.075 * s * b, 0.048 * s * b)


def _limb(draw: ImageDraw.ImageDraw, pts: list, colour: RGB, width: float) -> None:
    """A thick poly-line with round ends and joints."""
    draw.line(pts, fill=colour, width=max(1, int(width)), joint="curve")
    r = width / 2
    for x, y in (pts[0], pts[-1]):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)


def _draw_legs(draw: ImageDraw.ImageDraw, look: Look, p: Pose, g: _Body) -> None:
    """Legs (trousers, shorts or bare under a skirt), shoes, and the skirt or waistband."""
    s, cx = p.s, p.cx
    for leg in (-1, 1):
        if p.view == "side":
            k = leg * p.swing
            hip, foot = (cx, g.hip_y), (cx + p.facing * k * 0.16 * s, g.ank_y - max(0.0, -k) * 0.03 * s)
            knee = ((hip[0] + foot[0]) / 2 + p.facing * 0.025 * s, g.knee_y)
        else:
            lift = max(0.0, leg * p.swing) * 0.03 * s
            hip, foot = (cx + leg * g.hw * 0.5, g.hip_y), (cx + leg * g.hw * 0.6, g.ank_y - lift)
            knee = (cx + leg * g.hw * 0.55, g.knee_y - lift / 2)
        covered = look.bottom_kind == "long"
        _limb(draw, [hip, knee, foot], look.bottom if covered else look.skin, g.lw * (1 if covered else 0.75))
        if look.bottom_kind == "shorts":
            _limb(draw, [hip, (knee[0], knee[1] - 0.03 * s)], look.bottom, g.lw)
        toe = p.facing * 0.05 * s if p.view == "side" else 0
        fx, fy = foot
        draw.ellipse([fx - g.lw * 0.55 + min(toe, 0), fy - 0.015 * s, fx + g.lw * 0.55 + max(toe, 0),
                      fy + 0.04 * s], fill=look.shoes)
    if look.bottom_kind == "skirt":
        draw.polygon([(cx - g.hw, g.hip_y - 0.03 * s), (cx + g.hw, g.hip_y - 0.03 * s),
                      (cx + g.hw * 1.6, g.knee_y + 0.02 * s), (cx - g.hw * 1.6, g.knee_y + 0.02 * s)],
                     fill=look.bottom)
    else:
        draw.rectangle([cx - g.hw, g.hip_y - 0.03 * s, cx + g.hw, g.hip_y + 0.07 * s], fill=look.bottom)


def _arms(p: Pose, g: _Body) -> list[tuple]:
    """(shoulder, elbow, hand) of the far/left arm, then the near/right arm."""
    s, cx, arms = p.s, p.cx, []
    for arm in (-1, 1):
        if p.view == "side":
            hand = (cx + p.facing * -arm * p.swing * 0.13 * s, g.sh_y + 0.33 * s)
            sh = (cx, g.sh_y + g.aw * 0.5)
            elbow = ((sh[0] + hand[0]) / 2 - p.facing * 0.01 * s, g.sh_y + 0.17 * s)
        else:
            sh = (cx + arm * (g.sw - g.aw * 0.45), g.sh_y + g.aw * 0.5)
            elbow = (cx + arm * (g.sw + 0.012 * s), g.sh_y + 0.17 * s)
            hand = (cx + arm * (g.sw + 0.004 * s), g.sh_y + 0.33 * s + p.swing * arm * 0.012 * s)
        arms.append((sh, elbow, hand))
    return arms


def _draw_arm(draw: ImageDraw.ImageDraw, look: Look, g: _Body, s: float, arm: tuple,
              holds_bag: bool) -> None:
    """One arm in skin and sleeve, the hand, and a hand-held bag."""
    sh, elbow, hand = arm
    _limb(draw, [sh, elbow, hand], look.skin, g.aw * 0.8)
    if look.sleeves == "long":
        _limb(draw, [sh, elbow, hand], look.top, g.aw)
    elif look.sleeves == "short":
        _limb(draw, [sh, ((sh[0] + elbow[0]) / 2, (sh[1] + elbow[1]) / 2)], look.top, g.aw * 1.15)
    r = g.aw * 0.55
    draw.ellipse([hand[0] - r, hand[1] - r, hand[0] + r, hand[1] + r], fill=look.skin)
    if holds_bag:
        draw.rounded_rectangle([hand[0] - 0.05 * s, hand[1], hand[0] + 0.05 * s, hand[1] + 0.1 * s], 3,
                               fill=look.bag_colour)


_GRID = np.mgrid[0:CH, 0:CW]   # canvas row and column of every pixel: int [2, CH, CW]
_GRID.flags.writeable = False


def _pattern_mask(look: Look, p: Pose, g: _Body) -> np.ndarray:
    """Where the top shows its second colour: bool [CH, CW]."""
    yy, xx = _GRID
    per = look.period
    if look.pattern == "hstripes":
        return (yy // per) % 2 == 0
    if look.pattern == "vstripes":
        return ((xx - int(p.cx)) // per) % 2 == 0
    if look.pattern == "checks":
        return ((yy // per) + (xx // per)) % 2 == 0
    if look.pattern == "yoke":
        return yy < g.sh_y + 0.09 * p.s
    if look.pattern == "print" and p.view == "front":
        return (xx - p.cx) ** 2 + (yy - g.sh_y - 0.14 * p.s) ** 2 < (0.45 * g.sw) ** 2
    if look.pattern == "jacket" and p.view == "front":
        return np.abs(xx - p.cx) < 0.3 * g.sw
    return np.zeros((CH, CW), bool)


def _draw_torso(img: Image.Image, look: Look, p: Pose, g: _Body) -> None:
    """Neck, and the top with its pattern."""
    s, cx = p.s, p.cx
    ImageDraw.Draw(img).rectangle([cx - 0.025 * s, p.top + 0.1 * s, cx + 0.025 * s, g.sh_y + 2], fill=look.skin)
    lean = p.facing * 0.02 * s if p.view == "side" else 0
    outline = [(cx - g.sw * 0.85, g.sh_y - 0.012 * s), (cx + g.sw * 0.85, g.sh_y - 0.012 * s),
               (cx + g.sw + max(lean, 0), g.sh_y + 0.05 * s), (cx + g.hw * 1.05, g.hip_y + 0.03 * s),
               (cx - g.hw * 1.05, g.hip_y + 0.03 * s), (cx - g.sw + min(lean, 0), g.sh_y + 0.05 * s)]
    mask = Image.new("L", (CW, CH))
    ImageDraw.Draw(mask).polygon(outline, fill=255)
    img.paste(look.top, mask=mask)
    second = (np.asarray(mask) > 0) & _pattern_mask(look, p, g)
    img.paste(look.top2, mask=Image.fromarray(second.astype(np.uint8) * 255))


def _draw_bag(draw: ImageDraw.ImageDraw, look: Look, p: Pose, g: _Body, behind: bool) -> None:
    """Backpack (behind the body in side view, over it in back view, straps in front view)
    or shoulder bag; a hand bag is drawn with the hand."""
    s, cx = p.s, p.cx
    if look.bag == "backpack" and p.view == "side" and behind:
        x1 = cx - p.facing * (g.sw + 0.1 * s)
        draw.rounded_rectangle([min(x1, cx), g.sh_y + 0.01 * s, max(x1, cx), g.hip_y - 0.05 * s], 5,
                               fill=look.bag_colour)
    elif behind:
        return
    elif look.bag == "backpack" and p.view == "back":
        draw.rounded_rectangle([cx - g.sw * 0.8, g.sh_y + 0.02 * s, cx + g.sw * 0.8, g.hip_y - 0.04 * s], 6,
                               fill=look.bag_colour)
    elif look.bag == "backpack" and p.view == "front":
        for d in (-1, 1):
            draw.line([cx + d * g.sw * 0.55, g.sh_y - 0.01 * s, cx + d * g.sw * 0.6, g.sh_y + 0.22 * s],
                      fill=look.bag_colour, width=max(2, int(0.02 * s)))
    elif look.bag == "shoulder":
        draw.line([cx - g.sw * 0.7, g.sh_y - 0.01 * s, cx + g.hw * 1.1, g.hip_y - 0.04 * s],
                  fill=look.bag_colour, width=max(2, int(0.015 * s)))
        draw.rectangle([cx + g.hw * 0.7, g.hip_y - 0.06 * s, cx + g.hw * 0.7 + 0.12 * s, g.hip_y + 0.05 * s],
                       fill=look.bag_colour)


def _draw_head(draw: ImageDraw.ImageDraw, look: Look, p: Pose, g: _Body) -> None:
    """Head, hair, eyes and hat."""
    r = g.head_r
    hx, hy = p.cx + (p.facing * 0.01 * p.s if p.view == "side" else 0), p.top + r * 1.1
    box = [hx - r, hy - r * 1.1, hx + r, hy + r * 1.1]
    if look.hair_style == "long" and p.view != "back":
        draw.rectangle([hx - r * 1.05, hy - r * 0.3, hx + r * 1.05, hy + r * 2.2], fill=look.hair)
    draw.ellipse(box, fill=look.hair if p.view == "back" else look.skin)
    if p.view == "back" and look.hair_style == "long":
        draw.rectangle([hx - r * 1.05, hy, hx + r * 1.05, hy + r * 2.4], fill=look.hair)
    if p.view != "back":
        draw.pieslice([hx - r * 1.08, hy - r * 1.2, hx + r * 1.08, hy + r * 0.9], 180, 360, fill=look.hair)
        eyes = (hx - r * 0.4, hx + r * 0.4) if p.view == "front" else (hx + p.facing * r * 0.55,)
        for ex in eyes:
            draw.ellipse([ex - 1.5, hy + r * 0.05, ex + 1.5, hy + r * 0.05 + 2], fill=(30, 25, 25))
    if look.hair_style == "bun" and look.hat == "none":
        bx = hx - p.facing * r if p.view == "side" else hx
        draw.ellipse([bx - r * 0.45, hy - r * 1.45, bx + r * 0.45, hy - r * 0.6], fill=look.hair)
    if look.hat == "cap":
        draw.pieslice([hx - r * 1.1, hy - r * 1.3, hx + r * 1.1, hy + r * 0.7], 180, 360, fill=look.hat_colour)
        bx = p.facing * r * 1.5 if p.view == "side" else 0
        if p.view != "back":
            draw.rectangle([min(hx - r, hx + bx - r), hy - r * 0.35, max(hx + r, hx + bx + r * 0.3),
                            hy - r * 0.15], fill=look.hat_colour)
    elif look.hat == "beanie":
        draw.chord([hx - r * 1.1, hy - r * 1.6, hx + r * 1.1, hy + r * 0.4], 180, 360, fill=look.hat_colour)


def draw_person(img: Image.Image, look: Look, p: Pose) -> None:
    """Draw one pedestrian of ``look`` in pose ``p`` onto the canvas ``img`` (CW x CH, RGB)."""
    draw, g = ImageDraw.Draw(img), _body(look, p)
    arms = _arms(p, g)
    _draw_bag(draw, look, p, g, behind=True)
    if p.view == "side":
        _draw_arm(draw, look, g, p.s, arms[0], holds_bag=False)
    _draw_legs(draw, look, p, g)
    _draw_torso(img, look, p, g)
    _draw_bag(draw, look, p, g, behind=False)
    for arm in (arms[1:] if p.view == "side" else arms):
        _draw_arm(draw, look, g, p.s, arm, holds_bag=look.bag == "hand" and arm is arms[1])
    _draw_head(draw, look, p, g)


# ---- the camera
def _occlude(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """Partial occlusion in front of the person: a low object (bench, car) or a pole."""
    colour = _rgb(rng.integers(10, 230, 3))
    if rng.random() < 0.5:                              # car or bench: body, window band, wheels
        y = CH * rng.uniform(0.68, 0.86)
        draw.rounded_rectangle([-8, y, CW + 8, CH + 8], 8, fill=colour)
        draw.rectangle([-8, y + 6, CW + 8, y + 16], fill=_rgb(np.array(colour) * 0.45))
        for x in (CW * 0.15, CW * 0.85):
            draw.ellipse([x - 14, CH - 18, x + 14, CH + 10], fill=(25, 25, 25))
    else:
        x, w = CW * rng.uniform(0, 1), rng.uniform(6, 16)
        draw.rectangle([x, -1, x + w, CH], fill=colour)


def _apply_camera(arr: np.ndarray, cam: int, rng: np.random.Generator) -> np.ndarray:
    """Camera colour cast, brightness, saturation, a light ramp and sensor noise.

    arr: float32 [h, w, 3] in 0..255 -> uint8 [h, w, 3].
    """
    c = (cam - 1) % N_CAMERAS
    grey = arr.mean(axis=2, keepdims=True)
    arr = grey + np.float32(CAMERA_SATURATION[c] * rng.uniform(0.85, 1.15)) * (arr - grey)
    gain = np.array(CAMERA_GAIN[c]) * rng.uniform(0.87, 1.13, 3) * CAMERA_LIGHT[c] * rng.uniform(0.8, 1.2)
    ramp = np.linspace(1 - 0.3 * rng.random(), 1 + 0.1 * rng.random(), arr.shape[1], dtype=np.float32)
    ramp = ramp[::-1] if rng.random() < 0.5 else ramp
    arr *= gain.astype(np.float32)[None, None, :] * ramp[None, :, None]
    arr += rng.standard_normal(arr.shape, dtype=np.float32) * np.float32(3)
    return np.clip(arr, 0, 255).astype(np.uint8)


def render_image(seed: int, pid: int, index: int, cam: int) -> Image.Image:
    """Synthetic image ``index`` of identity ``pid`` seen by camera ``cam``: RGB, 64 x 128."""
    rng = np.random.default_rng([seed, pid, index, 4])
    scene = camera_scene(seed, cam)
    y0, x0 = int(rng.integers(0, scene.shape[0] - CH + 1)), int(rng.integers(0, scene.shape[1] - CW + 1))
    img = Image.fromarray(scene[y0:y0 + CH, x0:x0 + CW])
    look = identity_look(seed, pid)
    passer_by = rng.random() < 0.2                      # another pedestrian at one side
    if passer_by:
        other = identity_look(seed, 10**6 + 100 * pid + index)
        side = 1 if rng.random() < 0.5 else -1
        other_pose = random_pose(other, rng, cx=CW / 2 + side * CW * rng.uniform(0.5, 0.75),
                                 scale=rng.uniform(0.85, 1.05))
        in_front = rng.random() < 0.3
        if not in_front:
            draw_person(img, other, other_pose)
    draw_person(img, look, random_pose(look, rng))
    if passer_by and in_front:
        draw_person(img, other, other_pose)
    if rng.random() < 0.25:
        _occlude(ImageDraw.Draw(img), rng)
    img = Image.fromarray(_apply_camera(np.asarray(img.reduce(2), np.float32), cam, rng))
    if rng.random() < 0.4:
        img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.2))))
    return img


def render_jpeg(seed: int, pid: int, index: int, cam: int) -> bytes:
    """:func:`render_image` encoded as JPEG with fixed encoder settings (quality 60..95)."""
    rng = np.random.default_rng([seed, pid, index, 5])
    buf = io.BytesIO()
    render_image(seed, pid, index, cam).save(buf, "JPEG", quality=int(rng.integers(60, 96)),
                                             subsampling=2, optimize=False)
    return buf.getvalue()


def save_synthetic_grid(path: Path | str, *, seed: int = 0, ids: int = 5, per_id: int = 8,
                        zoom: int = 2) -> Path:
    """A PNG sheet of synthetic images: one row per identity, captioned ``pid cCAM``."""
    tile = Image.new("RGB", (per_id * (W + 2), ids * (H + 12)), "white")
    draw = ImageDraw.Draw(tile)
    for row, pid in enumerate(range(1, ids + 1)):
        for col, cam in enumerate(identity_cameras(seed, pid, per_id)):
            x, y = col * (W + 2), row * (H + 12)
            tile.paste(render_image(seed, pid, col, cam), (x, y))
            draw.text((x + 2, y + H), f"{pid} c{cam}", fill="black")
    tile = tile.resize((tile.width * zoom, tile.height * zoom), Image.NEAREST)
    tile.quantize(256, dither=Image.Dither.NONE).save(path, optimize=True)
    return Path(path)
