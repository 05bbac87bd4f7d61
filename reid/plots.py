"""Figures: training curves (Q8, Q11), ranked results (Q9), the gallery grid (handout Figure 2).

Every function returns the matplotlib Figure and, given `path`, also saves it as PNG.
The image figures take `[N, 3, H, W]` at any shape: C2's padded `128×128` squares or the
stronger recipe's unpadded `128×64` people; tiles keep the images' aspect. They are drawn
at `FIGURE_DPI` (what a notebook shows inline too) and saved with a 256-colour palette
(`save_png`), which keeps a figure of photos around 100 KB.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from PIL import Image
from torch import Tensor

from .data import IMAGENET_MEAN, IMAGENET_STD

FIGURE_DPI = 72
"""Dots per inch of the image figures, saved and inline: 1 inch of figure = 72 pixels."""
SHOWN_WIDTH = 900
"""Figures are readable when shown this many pixels wide: every text at least MIN_TEXT_PX pixels high."""
MIN_TEXT_PX = 10
MIN_ROW_WIDTH = 7.5
"""Inches: a row of images (show_images) is at least this wide, 540 pixels at FIGURE_DPI."""


def readable_size(width_in: float, least: float = 7.0, dpi: int = FIGURE_DPI) -> float:
    """The smallest font size (points) that stays ``MIN_TEXT_PX`` high when a figure ``width_in`` inches
    wide, saved at ``dpi``, is shown ``SHOWN_WIDTH`` pixels wide, or at its own width when it is narrower
    (a notebook does not enlarge a small picture): pt × shown / (72 × width_in) ≥ MIN_TEXT_PX; at least
    ``least``, rounded up to a half point."""
    shown = min(SHOWN_WIDTH, width_in * dpi)
    needed = MIN_TEXT_PX * 72 * width_in / shown
    return max(least, np.ceil(needed * 2) / 2)


def _drawn_texts(fig: Figure) -> list[matplotlib.text.Text]:
    """The texts a saved figure shows: figure titles, and per axes its titles, its labels and tick labels
    when its axis is on, its legend and the texts placed in it (empty or hidden ones left out)."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax._left_title, ax._right_title, *ax.texts]
        if ax.axison:
            texts += [ax.xaxis.label, ax.yaxis.label, *ax.get_xticklabels(), *ax.get_yticklabels()]
        legend = ax.get_legend()
        if legend is not None:
            texts += [*legend.get_texts(), legend.get_title()]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def shown_text_px(fig: Figure, shown_width: int = SHOWN_WIDTH, dpi: int = FIGURE_DPI) -> float:
    """The height in pixels of the smallest text ``fig`` shows when its saved picture (tight bounding
    box, as save_png writes it, at ``dpi``) is shown ``shown_width`` pixels wide, or at its own width
    when that is narrower."""
    fig.canvas.draw()
    width_in = fig.get_tightbbox(fig.canvas.get_renderer()).width
    sizes = [t.get_fontsize() for t in _drawn_texts(fig)]
    shown = min(shown_width, width_in * dpi)
    return min(sizes) * shown / (72 * width_in) if sizes else float("inf")


def denormalize(images: Tensor) -> np.ndarray:
    """`[N, 3, H, W]` or `[3, H, W]` normalised tensors → `[N, H, W, 3]` (or `[H, W, 3]`) RGB in [0, 1].

    The zero padding maps back to the ImageNet mean colour (a grey), which is what the
    network sees.
    """
    x = images.detach().float().cpu()
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    x = (x * std + mean).clamp(0, 1)
    return x.movedim(-3, -1).numpy()


def save_png(fig: Figure, path: str | Path, dpi: int = FIGURE_DPI, colors: int | None = 256) -> Path:
    """Save ``fig`` as PNG; with ``colors``, reduced to a palette of that many colours (PIL's
    median cut), which keeps photos about a third of their full-colour size.

    In a notebook the saved file is what the cell shows (the figure itself is closed), so the
    notebook holds the same small picture as the file rather than a full-colour copy."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if colors is None:
        fig.savefig(path, dpi=dpi, bbox_inches="tight", format="png")
    else:
        buffer = io.BytesIO()
        fig.savefig(buffer, dpi=dpi, bbox_inches="tight", format="png")
        with Image.open(buffer) as rendered:
            palette = rendered.convert("RGB").quantize(colors, method=Image.Quantize.MEDIANCUT)
        palette.save(path, format="png", optimize=True)
    _show_saved(fig, path)
    return path


def _show_saved(fig: Figure, path: Path) -> None:
    """Under the notebook's inline backend: display the saved file and close ``fig``."""
    if "ipykernel" not in sys.modules or "inline" not in matplotlib.get_backend().lower():
        return
    from IPython.display import Image as ShownImage, display

    plt.close(fig)
    display(ShownImage(filename=str(path)))


def _save(fig: Figure, path: str | Path | None, dpi: int = 100, colors: int | None = None) -> Figure:
    """Save ``fig`` at ``path`` (if given) with :func:`save_png`; return it."""
    if path is not None:
        save_png(fig, path, dpi, colors)
    return fig


def _tile_width(images: Tensor, height: float) -> float:
    """Width in inches of a tile `height` inches high showing `[…, H, W]` images undistorted."""
    h, w = images.shape[-2:]
    return height * w / h


def _get(history: Any, name: str) -> list[float]:
    value = history.get(name, []) if isinstance(history, Mapping) else getattr(history, name, [])
    return list(value or [])


def _smooth(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) < window:
        return v
    return np.convolve(v, np.ones(window) / window, mode="valid")


def plot_history(histories: Mapping[str, Any], path: str | Path | None = None,
                 title: str | None = None) -> Figure:
    """The handout's curves, one colour per model: training loss per iteration (faint: each
    iteration; solid: its moving average over a fiftieth of the run), drawn against epochs so that models
    with different iterations an epoch line up, validation loss per epoch, and val Rank-1, Rank-5 and
    Rank-10 per epoch, each in its own panel; a ring marks each model's kept epoch (best val mAP).
    Drawn 9 inches wide, so its text stays readable shown 900 pixels wide (:func:`shown_text_px`).

    When a model records its share of active triplets (``active_triplets``: the handout's triplet model,
    the listed triplets whose loss was above zero), it gets the top-right panel and the legend goes above
    the figure.

    Args:
        histories: {label: History or its dict}; each has iter_loss, val_loss, rank1, rank5, rank10, mAP.
    """
    fig, axes = plt.subplots(2, 3, figsize=(9.0, 5.6))
    active = {label: [a for a in _get(h, "active_triplets") or [] if a is not None] for label, h in histories.items()}
    colors = matplotlib.colormaps["tab10"].colors
    windows = []
    for i, (label, h) in enumerate(histories.items()):
        c = colors[i % 10]
        loss = _get(h, "iter_loss")
        window = max(1, len(loss) // 50)
        windows.append(window)
        epochs = len(_get(h, "rank1")) or 1
        per_epoch = max(1.0, len(loss) / epochs)   # iterations an epoch: the x axis is in epochs for every model
        axes[0, 0].plot((np.arange(len(loss)) + 1) / per_epoch, loss, color=c, alpha=0.25, lw=0.8)
        sm = _smooth(loss, window)
        axes[0, 0].plot((np.arange(len(sm)) + window) / per_epoch, sm, color=c, lw=1.6, label=label)
        vl = _get(h, "val_loss")
        axes[0, 1].plot(np.arange(1, len(vl) + 1), vl, "o-", color=c, ms=3, label=label)
        maps = [m if m is not None else -1 for m in _get(h, "mAP")]
        kept = max(range(len(maps)), key=lambda e: (maps[e], -e)) if maps else None
        for ax, k in zip(axes[1], (1, 5, 10)):
            r = _get(h, f"rank{k}")
            ax.plot(np.arange(1, len(r) + 1), r, "o-", color=c, ms=3, label=label)
            if kept is not None and kept < len(r):
                ax.plot([kept + 1], [r[kept]], "o", ms=9, mfc="none", mec=c, mew=1.5)
    smooth = "mean of 1/50 of the run" if windows and max(windows) > 1 else "each iteration"
    own = "; each model its own loss" if len(histories) > 1 else ""
    axes[0, 0].set(xlabel="epoch (each iteration placed in its epoch)", ylabel="loss",
                   title=f"Training loss per iteration{own}\n(faint: each iteration; solid: {smooth})")
    axes[0, 1].set(xlabel="epoch", ylabel="loss", title="Validation loss\n(triplet loss on val triplets)")
    for ax, k in zip(axes[1], (1, 5, 10)):
        ax.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title=f"Val Rank-{k}")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.title.set_fontsize(9)
        ax.xaxis.label.set_fontsize(8)
        ax.yaxis.label.set_fontsize(8)
        ax.tick_params(labelsize=8)
    handles, labels = axes[0, 1].get_legend_handles_labels()
    handles.append(matplotlib.lines.Line2D([], [], ls="none", marker="o", ms=9, mfc="none", mec="grey"))
    labels.append("ring: the kept epoch\n(best val mAP)")
    if any(active.values()):
        for i, (label, share) in enumerate(active.items()):
            if share:
                axes[0, 2].plot(np.arange(1, len(share) + 1), share, "s-", color=colors[i % 10], ms=3)
        axes[0, 2].set(xlabel="epoch", ylabel="share", ylim=(0, 1.02),
                       title="Listed triplets still active\n(loss > 0 when their step ran)")
        axes[0, 2].title.set_fontsize(9)
        fig.legend(handles, [t.replace("\n", " ") for t in labels], loc="upper center", ncol=len(labels),
                   fontsize=8, frameon=False)
        fig.tight_layout(rect=(0, 0, 1, 0.94))
    else:
        axes[0, 2].axis("off")  # the legend's panel: one entry per model, covering no curve
        axes[0, 2].legend(handles, labels, loc="center", fontsize=8, frameon=False)
        fig.tight_layout()
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path, colors=64)  # line plots: a small palette loses nothing


class _Tiles:
    """A figure of ``nrows × ncols`` image tiles of ``tile_w × tile_h`` inches, ``title_room`` inches above
    each for its title, ``gap`` inches between tiles and a line for ``title`` on top, laid out by hand on one
    axes that covers the figure (its units: inches from the top left corner), so the tiles keep their size.

    One axes for all the tiles rather than one each: matplotlib builds and lays out an axes (ticks, title
    placement) in about 30 ms, so a 100-image grid took seconds to make and to save; on one axes the
    images are composited in one pass."""

    def __init__(self, nrows: int, ncols: int, tile_w: float, tile_h: float, title_room: float,
                 title: str | None, gap: float = 0.08) -> None:
        self.top = 0.3 if title else 0.05
        self.tile_w, self.tile_h, self.title_room, self.gap = tile_w, tile_h, title_room, gap
        self.width = ncols * (tile_w + gap) + gap
        self.height = nrows * (tile_h + title_room + gap) + self.top
        self.fig = plt.figure(figsize=(self.width, self.height), dpi=FIGURE_DPI)
        self.ax = self.fig.add_axes((0, 0, 1, 1))
        self.ax.set_axis_off()
        if title:
            self.fig.suptitle(title, fontsize=readable_size(self.width, 10), y=1 - 0.04 / self.height, va="top")

    def add(self, row: int, col: int, picture: np.ndarray, title: str, size: float, color: str = "black",
            frame: str | None = None, pad_pt: float = 6.0, frame_pt: float = 3.0) -> None:
        """The picture ``[H, W, 3]`` in tile (row, col), ``title`` above it (``pad_pt`` points up), and
        a ``frame_pt``-point frame of colour ``frame`` around it."""
        x0 = self.gap + col * (self.tile_w + self.gap)
        y0 = self.top + self.title_room + row * (self.tile_h + self.title_room + self.gap)
        self.ax.imshow(picture, extent=(x0, x0 + self.tile_w, y0 + self.tile_h, y0), aspect="auto")
        if frame:
            self.ax.add_patch(Rectangle((x0, y0), self.tile_w, self.tile_h, fill=False, edgecolor=frame,
                                        linewidth=frame_pt))
        self.ax.text(x0 + self.tile_w / 2, y0 - pad_pt / 72, title, ha="center", va="bottom", fontsize=size,
                     color=color)

    def done(self) -> Figure:
        self.ax.set_xlim(0, self.width)
        self.ax.set_ylim(self.height, 0)
        return self.fig


def tile_boxes(fig: Figure) -> list[tuple[float, float]]:
    """(width, height) in inches of each image tile a figure of :class:`_Tiles` shows, in drawing order."""
    return [(abs(x1 - x0), abs(y0 - y1)) for ax in fig.axes for (x0, x1, y0, y1) in
            (im.get_extent() for im in ax.images)]


def tile_titles(fig: Figure) -> list[tuple[str, str]]:
    """(text, colour name or RGBA) of each tile's title, in drawing order."""
    return [(t.get_text(), t.get_color()) for ax in fig.axes for t in ax.texts]


def plot_ranked_results(query_images: Tensor, gallery_images: Tensor, ranks: Tensor, gt: Tensor,
                        rows: Sequence[int], path: str | Path | None = None,
                        title: str | None = None, tile_height: float = 0.9, colors: int | None = 128) -> Figure:
    """For each query in `rows`: the query, then its top-k gallery images (k = ranks.shape[1]),
    framed green where the image is the query's ground-truth gallery image, red otherwise.

    Args:
        query_images: `[Q, 3, H, W]`;  gallery_images: `[G, 3, H, W]` (`128×128` padded squares
            or `128×64` unpadded people);
        ranks: `[Q, k]` gallery indices, nearest first;  gt: `[Q]` true gallery index.
        tile_height: inches (= `FIGURE_DPI` pixels) per tile; its width follows the images' aspect.
        colors: palette size of the saved PNG (None: full colour, about 3× larger).

    6 queries × top-10 of Market crops save at about 95 KB at 128×64 and 110 KB at 128×128
    (the synthetic pedestrians: about 50 KB); shown inline in full colour, about 300 KB.
    """
    k, tile_w = ranks.shape[1], _tile_width(gallery_images, tile_height)
    size = readable_size((k + 1) * (tile_w + 0.08))
    tiles = _Tiles(len(rows), k + 1, tile_w, tile_height, title_room=max(0.2, 1.6 * size / 72), title=title)
    for r, q in enumerate(rows):
        tiles.add(r, 0, denormalize(query_images[q]), f"query {q}", size, frame="black")
        for j in range(k):
            g = int(ranks[q, j])
            hit = "green" if g == int(gt[q]) else "red"
            tiles.add(r, j + 1, denormalize(gallery_images[g]), f"#{j + 1}: {g}", size, color=hit, frame=hit)
    return _save(tiles.done(), path, dpi=FIGURE_DPI, colors=colors)


def show_gallery_grid(images: Tensor, ncols: int = 20, path: str | Path | None = None,
                      title: str | None = None, tile_height: float = 0.6, colors: int | None = 128) -> Figure:
    """A grid of gallery images `[N, 3, H, W]` in gallery order, like the handout's Figure 2.

    The handout's images are padded squares (`128×128`); the stronger recipe's unpadded people
    (`128×64`) get tiles half as wide. `tile_height` in inches; saved with a palette of `colors`
    (100 Market crops in rows of 20: about 80 KB at 128×64, 85 KB at 128×128)."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    tile_w = _tile_width(images, tile_height)
    size = readable_size(ncols * (tile_w + 0.08))
    tiles = _Tiles(nrows, ncols, tile_w, tile_height, title_room=1.3 * size / 72, title=title)
    pics = denormalize(images)
    for i in range(n):
        tiles.add(i // ncols, i % ncols, pics[i], str(i), size, pad_pt=1)
    return _save(tiles.done(), path, dpi=FIGURE_DPI, colors=colors)


def show_before_after(image: Any, tensor: Tensor, path: str | Path | None = None) -> Figure:
    """One image as read (PIL) beside the transformed `[3, H, W]` tensor shown back in RGB."""
    fig, axes = plt.subplots(1, 2, figsize=(4.2, 2.6))
    axes[0].imshow(image)
    axes[0].set_title(f"file: {image.size[0]}×{image.size[1]} (w×h)", fontsize=8)
    axes[1].imshow(denormalize(tensor))
    axes[1].set_title(f"transformed: {tuple(tensor.shape)}", fontsize=8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return _save(fig, path)


def show_images(images: Tensor, titles: Sequence[str], path: str | Path | None = None,
                title: str | None = None, tile_height: float = 1.6, colors: int | None = 128) -> Figure:
    """A row of images ``[N, 3, H, W]`` (normalised, as the datasets serve them) with a title each:
    samples of IDLossDataset, or a triplet (anchor, positive, negative). Tiles keep the aspect; a row of
    few images gets taller tiles, so the figure is at least ``MIN_ROW_WIDTH`` inches wide and its titles fit."""
    if len(images) != len(titles):
        raise ValueError(f"show_images got {len(images)} images and {len(titles)} titles")
    tile_w = _tile_width(images, tile_height)
    if len(images) * tile_w < MIN_ROW_WIDTH:
        tile_height *= MIN_ROW_WIDTH / (len(images) * tile_w)
        tile_w = _tile_width(images, tile_height)
    size = readable_size(len(images) * (tile_w + 0.08))
    tiles = _Tiles(1, len(images), tile_w, tile_height, title_room=max(0.3, 1.6 * size / 72), title=title)
    for j, (pic, text) in enumerate(zip(denormalize(images), titles)):
        tiles.add(0, j, pic, text, size, frame="black", frame_pt=0.8)
    return _save(tiles.done(), path, dpi=FIGURE_DPI, colors=colors)
