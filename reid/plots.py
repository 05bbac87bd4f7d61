"""Figures: training curves (Q8, Q11), ranked results (Q9), the gallery grid (handout Figure 2).

Every function returns the matplotlib Figure and, given `path`, also saves it as PNG.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor

from .data import IMAGENET_MEAN, IMAGENET_STD


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


def _save(fig: Figure, path: str | Path | None, dpi: int = 100) -> Figure:
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return fig


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
    """Three panels per the handout: training loss per iteration, validation loss per epoch,
    and val Rank-1/5/10 per epoch, one line style per model.

    Args:
        histories: {label: History or its dict}; each has iter_loss, val_loss, rank1, rank5, rank10.
    """
    fig, axes = plt.subplots(1, 3, figsize=(15, 3.8))
    colors = matplotlib.colormaps["tab10"].colors
    for i, (label, h) in enumerate(histories.items()):
        c = colors[i % 10]
        loss = _get(h, "iter_loss")
        window = max(1, len(loss) // 50)
        axes[0].plot(np.arange(len(loss)) + 1, loss, color=c, alpha=0.25, lw=0.8)
        sm = _smooth(loss, window)
        axes[0].plot(np.arange(len(sm)) + window, sm, color=c, lw=1.6, label=f"{label} (mean of {window})")
        vl = _get(h, "val_loss")
        axes[1].plot(np.arange(1, len(vl) + 1), vl, "o-", color=c, label=label)
        for k, style in ((1, "o-"), (5, "s--"), (10, "^:")):
            r = _get(h, f"rank{k}")
            axes[2].plot(np.arange(1, len(r) + 1), r, style, color=c, label=f"{label} Rank-{k}")
    axes[0].set(xlabel="iteration", ylabel="training loss", title="Training loss per iteration")
    axes[1].set(xlabel="epoch", ylabel="validation loss", title="Validation loss per epoch")
    axes[2].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1.02), title="Val Rank-1 / 5 / 10 per epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _frame(ax: plt.Axes, color: str) -> None:
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3)


def plot_ranked_results(query_images: Tensor, gallery_images: Tensor, ranks: Tensor, gt: Tensor,
                        rows: Sequence[int], path: str | Path | None = None,
                        title: str | None = None) -> Figure:
    """For each query in `rows`: the query, then its top-k gallery images (k = ranks.shape[1]),
    framed green where the image is the query's ground-truth gallery image, red otherwise.

    Args:
        query_images: `[Q, 3, 128, 128]`;  gallery_images: `[G, 3, 128, 128]`;
        ranks: `[Q, k]` gallery indices, nearest first;  gt: `[Q]` true gallery index.
    """
    k = ranks.shape[1]
    fig, axes = plt.subplots(len(rows), k + 1, figsize=(1.25 * (k + 1), 1.45 * len(rows)), squeeze=False)
    for r, q in enumerate(rows):
        ax = axes[r, 0]
        ax.imshow(denormalize(query_images[q]))
        ax.set_title(f"query {q}", fontsize=7)
        _frame(ax, "black")
        for j in range(k):
            g = int(ranks[q, j])
            ax = axes[r, j + 1]
            ax.imshow(denormalize(gallery_images[g]))
            hit = g == int(gt[q])
            ax.set_title(f"#{j + 1}: {g}", fontsize=7, color="green" if hit else "red")
            _frame(ax, "green" if hit else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path, dpi=72)


def show_gallery_grid(images: Tensor, ncols: int = 20, path: str | Path | None = None,
                      title: str | None = None) -> Figure:
    """A grid of padded gallery images `[N, 3, 128, 128]` in gallery order, like the handout's Figure 2."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(0.75 * ncols, 0.8 * nrows), squeeze=False)
    pics = denormalize(images)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(pics[i])
            ax.set_title(str(i), fontsize=6, pad=1)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout(pad=0.2)
    return _save(fig, path, dpi=72)


def show_before_after(image: Any, tensor: Tensor, path: str | Path | None = None) -> Figure:
    """One image as read (PIL) beside the transformed `[3, 128, 128]` tensor shown back in RGB."""
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
