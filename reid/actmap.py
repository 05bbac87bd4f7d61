"""Activation maps: where the backbone looks (issue 15), after torchreid's ``visualize_actmap``.

The map of one image is computed from the backbone's last convolutional feature map
``F`` ``[C, h, w]`` (8 x 8 at 128 x 128 input, the map entering the average pooling):
``A[i, j] = sum_c F[c, i, j] ** 2``, then L2-normalised over the ``h * w`` positions
(``sum_ij A[i, j] ** 2 = 1``), then upsampled bilinearly to the image size.
Padding: the handout pads *after* ImageNet normalisation, so padding pixels are exactly 0
in all three channels; the person is the box of rows and columns holding a non-zero value.
"""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor, nn

from .plots import denormalize, readable_size, save_png
from .text import wrap

REGIONS = ("upper", "middle", "lower", "padding")


def _last_stage(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """``(backbone, its last stage)`` for a model with ``.backbone`` or a backbone itself.

    The backbone must have ``stages()`` (as :class:`reid.model.ModifiedResNet`) returning its
    stages in order; the last one outputs the feature map that the pooling averages."""
    backbone = getattr(model, "backbone", model)
    if not callable(getattr(backbone, "stages", None)):
        raise TypeError(f"{type(backbone).__name__} has no stages() method: expected a "
                        "ModifiedResNet (or a model whose .backbone is one)")
    return backbone, backbone.stages()[-1]


def feature_maps(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """The last stage's output ``[N, C, h, w]`` float32 on the CPU for ``[N, 3, H, W]`` images.

    Read by a forward hook while the backbone runs in eval mode under ``no_grad`` on the
    model's device; every submodule's train/eval mode is restored afterwards."""
    backbone, stage = _last_stage(model)
    param = next(model.parameters())
    captured: list[Tensor] = []
    hook = stage.register_forward_hook(lambda _m, _inp, out: captured.append(out.detach().float().cpu()))
    modes = [(m, m.training) for m in model.modules()]
    try:
        model.eval()
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                backbone(images[start:start + batch_size].to(param.device, param.dtype))
    finally:
        hook.remove()
        for module, training in modes:
            module.train(training)
    return torch.cat(captured) if captured else torch.zeros(0, 0, 0, 0)


def raw_activation_maps(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """``[N, h, w]``: channel sum of squares of the last feature map, L2-normalised over positions
    (each map's squares sum to 1; an all-zero map stays zero)."""
    energy = feature_maps(model, images, batch_size).pow(2).sum(dim=1)   # [N, h, w]
    flat = F.normalize(energy.flatten(1), p=2, dim=1)                     # [N, h * w]
    return flat.view_as(energy)


def activation_maps(model: nn.Module, images: Tensor, batch_size: int = 64) -> Tensor:
    """``[N, H, W]`` float32 (CPU): :func:`raw_activation_maps` upsampled bilinearly
    (``align_corners=False``) to the images' ``H x W``; not min-max scaled."""
    raw = raw_activation_maps(model, images, batch_size)
    return F.interpolate(raw[:, None], size=tuple(images.shape[-2:]), mode="bilinear",
                         align_corners=False)[:, 0]


def content_boxes(images: Tensor) -> Tensor:
    """``[N, 4]`` long ``(top, bottom, left, right)``, bottom/right exclusive: the smallest box
    holding every pixel that is non-zero in some channel of ``[N, 3, H, W]``. The rest is the
    zero padding. An all-zero image has no known padding: its box is the whole image."""
    nonzero = images.detach().cpu().ne(0).any(dim=1)                      # [N, H, W]
    n, h, w = nonzero.shape
    boxes = torch.tensor([[0, h, 0, w]]).repeat(n, 1)
    for axis, (lo, hi) in ((2, (0, 1)), (1, (2, 3))):                     # rows, then columns
        hit = nonzero.any(dim=axis)                                       # [N, H] or [N, W]
        size = hit.shape[1]
        index = torch.arange(size).expand_as(hit)
        some = hit.any(dim=1)
        boxes[some, lo] = torch.where(hit, index, size).min(dim=1).values[some]
        boxes[some, hi] = torch.where(hit, index, -1).max(dim=1).values[some] + 1
    return boxes


def maps_in_frame(maps: Tensor, frames: Tensor) -> Tensor:
    """Maps computed on unpadded images placed over the person in padded frames.

    The stronger recipe sees each person at their own shape (e.g. 128×64), the handout models
    the same person resized into a padded 128×128 frame. To compare them on one figure, each
    map ``[N, h, w]`` is resized (bilinear) to the content box of its frame (``frames``
    ``[N, 3, H, W]``, see :func:`content_boxes`) and placed there, zeros on the padding.
    Returns ``[N, H, W]`` float32; each map's mass is spread over the box, so its shares of
    the person's thirds are kept (up to interpolation) and its padding share is 0."""
    if len(maps) != len(frames):
        raise ValueError(f"maps_in_frame got {len(maps)} maps for {len(frames)} frames")
    out = torch.zeros(len(frames), *frames.shape[-2:], dtype=torch.float32)
    for i, (top, bottom, left, right) in enumerate(content_boxes(frames).tolist()):
        box = F.interpolate(maps[i][None, None].float(), size=(bottom - top, right - left),
                            mode="bilinear", align_corners=False)[0, 0]
        out[i, top:bottom, left:right] = box
    return out


def region_masks(images: Tensor) -> dict[str, Tensor]:
    """Boolean ``[N, H, W]`` masks for :data:`REGIONS`. Pixel row ``r`` of a person box of
    height ``b`` starting at ``top`` is in third ``floor(3 * (r - top) / b)`` (0 upper, 1 middle,
    2 lower); everything outside the box is padding. The four masks partition the image."""
    boxes = content_boxes(images)
    n, _, h, w = images.shape
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    top, bottom, left, right = (boxes[:, k].view(n, 1, 1) for k in range(4))
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)  # [N, H, W]
    third = torch.div(3 * (rows - top), (bottom - top).clamp(min=1), rounding_mode="floor")
    masks = {name: inside & (third == k) for k, name in enumerate(REGIONS[:3])}
    masks["padding"] = ~inside
    return masks


def activation_stats(maps: Tensor, images: Tensor) -> pd.DataFrame:
    """Where each map's mass lies: one row per image, columns ``upper``, ``middle``, ``lower``
    (thirds of the person box, see :func:`region_masks`) and ``padding``.

    The mass of a region is the sum of the upsampled, L2-normalised map's values
    (:func:`activation_maps`, ``[N, H, W]``, non-negative) over the region's pixels divided by
    their sum over the whole image, so a row sums to 1. ``images`` are the ``[N, 3, H, W]``
    normalised inputs the maps came from (only their zero padding is used)."""
    if maps.shape[0] != images.shape[0] or maps.shape[-2:] != images.shape[-2:]:
        raise ValueError(f"maps {tuple(maps.shape)} do not match images {tuple(images.shape)}: "
                         "expected [N, H, W] for [N, 3, H, W]")
    m = maps.detach().float().cpu()
    total = m.sum(dim=(1, 2)).clamp(min=1e-12)
    shares = {name: ((m * mask).sum(dim=(1, 2)) / total).numpy()
              for name, mask in region_masks(images).items()}
    return pd.DataFrame(shares, columns=list(REGIONS))


def whole_percentages(fractions: Sequence[float]) -> list[int]:
    """Fractions that sum to 1 as whole percentages that sum to 100 (the largest remainders round up)."""
    raw = [100 * f for f in fractions]
    out = [int(v) for v in raw]
    for i in sorted(range(len(raw)), key=lambda i: out[i] - raw[i])[:100 - sum(out)]:
        out[i] += 1
    return out


def describe_activation_maps(stats_by_model: Mapping[str, pd.DataFrame]) -> str:
    """One sentence per model from :func:`activation_stats` tables, averaged over images: the share
    of the map on the padding, and how the part on the person splits over its thirds (shares of
    the person part, so that models with and without padding compare), e.g.
    ``stronger recipe: 0 % of the map on padding; of the part on the person, 41 % on its upper third,
    35 % middle, 24 % lower (mean of 8 images).``"""
    lines = []
    for name, table in stats_by_model.items():
        mean = table[list(REGIONS)].mean()
        person = max(1e-12, float(mean["upper"] + mean["middle"] + mean["lower"]))
        share = dict(zip(("upper", "middle", "lower"),
                         whole_percentages([float(mean[r]) / person for r in ("upper", "middle", "lower")])))
        where = (f"{100 * mean['padding']:.0f} % of the map on padding" if mean["padding"] > 0 else
                 "none of the map on padding (its input has none)")
        lines.append(f"{name}: {where}; of the part on the person, {share['upper']} % on its upper third, "
                     f"{share['middle']} % middle, {share['lower']} % lower "
                     f"(mean of {len(table)} image{'s' if len(table) != 1 else ''}).")
    return wrap("\n".join(lines))


def _overlay(ax: plt.Axes, picture: np.ndarray, heat: np.ndarray, padding: np.ndarray,
             alpha: float) -> None:
    """Heat map over the picture; padding pixels get a light grey wash and hatching."""
    ax.imshow(picture)
    ax.imshow(heat, cmap="jet", vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
    wash = np.zeros((*padding.shape, 4))
    wash[padding] = (0.85, 0.85, 0.85, 0.55)
    ax.imshow(wash, interpolation="nearest")
    if padding.any():
        ax.contourf(padding.astype(float), levels=[0.5, 1.5], colors="none", hatches=["////"])


def show_activation_maps(models: nn.Module | Mapping[str, nn.Module], images: Tensor,
                         path: str | Path | None = None, titles: Sequence[str] | None = None,
                         maps: Mapping[str, Tensor] | None = None, batch_size: int = 64,
                         alpha: float = 0.5, title: str | None = None, dpi: int = 72,
                         colors: int | None = 128) -> Figure:
    """First row: the ``[N, 3, H, W]`` images; then one row per model: its activation map
    (min-max scaled per image, ``jet``: red = most) over the image. Padding is washed grey
    and hatched. ``models``: one model or ``{row label: model}``; ``maps``: optional
    precomputed :func:`activation_maps` per label (``[N, H, W]``). Saved as PNG at ``dpi``
    with a palette of ``colors`` (see :func:`save_png`): 8 images x 4 rows is about 160 KB; the text
    is sized to stay readable shown 900 pixels wide (reid.plots.readable_size)."""
    models = {"model": models} if isinstance(models, nn.Module) else dict(models)
    maps = dict(maps or {})
    for name, model in models.items():
        if name not in maps:  # (not setdefault: that would compute the map even when given)
            maps[name] = activation_maps(model, images, batch_size)
    pictures, padding = denormalize(images), region_masks(images)["padding"].numpy()
    n, rows = len(images), 1 + len(models)
    tile_h = 1.5
    tile_w = tile_h * images.shape[-1] / images.shape[-2]
    width = n * (tile_w + 0.1) + 1.0            # + the row labels
    size = readable_size(width, 8)
    fig, axes = plt.subplots(rows, n, figsize=(width, rows * (tile_h + 0.1) + 0.9), squeeze=False)
    for j in range(n):
        axes[0, j].imshow(pictures[j])
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=size)
    for i, name in enumerate(models, start=1):
        m = maps[name].detach().float().cpu()
        low = m.amin(dim=(1, 2), keepdim=True)
        scaled = ((m - low) / (m.amax(dim=(1, 2), keepdim=True) - low).clamp(min=1e-12)).numpy()
        for j in range(n):
            _overlay(axes[i, j], pictures[j], scaled[j], padding[j], alpha)
        axes[i, 0].set_ylabel(textwrap.fill(name, 14), fontsize=size)
    axes[0, 0].set_ylabel("image", fontsize=size)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title or "Activation maps (per-image min–max; red = most; hatched = padding)",
                 fontsize=size + 1, y=0.995, va="top")
    height = fig.get_size_inches()[1]
    fig.tight_layout(pad=0.3, rect=(0, 0, 1, 1 - (size + 8) / 72 / height))   # the suptitle's line kept clear
    if path is not None:
        save_png(fig, path, dpi, colors)
    return fig
