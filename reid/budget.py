"""Default training budgets: how many epochs a model gets, from the device and the data.

A fixed epoch count gives a small layout few optimiser steps (40 identities × 10 images are
6 batches of 64 an epoch) and a large one many, and the same count does not suit a 2-core CPU
and a GPU. So the budget is a number of training samples each model sees, counted at the cost
of the handout's 128×128 input (an H×W image counts H·W/128² of one, so the stronger
recipe's 128×64 images cost half), and the epochs follow from the data:

    epochs = ceil(budget / samples per epoch),   at least MIN_EPOCHS.

A sample is an image for the ID and stronger recipes and a row of the triplet file (an anchor
with its positive and negative) for the triplet recipe, so the triplet model gets as many
passes over its rows as the ID model over its images, at three times the images. Counting the
triplet model's three images instead gave it a third of the epochs, and its val curve was still
rising when they ran out. Measured with the literal preset (bench/BENCHMARKS.md, section 4): on
the synthetic layout 5 epochs ended at val Rank-1 0.180, still rising, and 14 at 0.332 (0.336 at
epoch 13, the last three epochs within 0.004 of each other, though above the earlier ones by 0.02,
so ``reid.report.verdict`` still calls the curve rising); on the Market layout 14 epochs levelled
off at 0.318 (best 0.335 at epoch 11).

CPU: 31,000 images per model, the budget the full notebook run has had on the 2-core CPU (the
ID model's 14 epochs of 35 batches of 64 on the 2,300 training images: about 8 minutes under
bfloat16). CUDA: 4× that, chosen from the CPU curves on the Market-1501 layout (bench/BENCHMARKS.md,
section 3): the ID and stronger recipes level off after about 20 passes over 2,300 images
(45,000 images) from random weights; 124,000 gives that with room for ImageNet-initialised
runs to settle, and fits a T4 in minutes by the CPU-to-GPU throughput ratio assumed, not
measured, here (no GPU was available to this project's machine; see README).
``REID_EPOCHS`` overrides every model's epochs (see :func:`epochs_from_env`).
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch

from reid.train import Recipe

IMAGE_BUDGET = {"cpu": 31_000, "cuda": 124_000}  # samples (images; triplet rows) per model, a 128×64 image counting half
MIN_EPOCHS = 2
EPOCHS_ENV = "REID_EPOCHS"


def images_per_epoch(cfg: Any, train_set: Any) -> int:
    """Images one epoch of ``cfg``'s recipe pushes through the model (3 per triplet row).

    "id": ⌊N / batch⌋ batches of ``batch_size`` images; "triplet" (listed rows): ⌊T / batch⌋
    batches of ``batch_size`` rows × 3 images, or the P×K sampler's batches when mined;
    "strong": the P×K sampler's batches of ``p·k`` images."""
    # The batches are the training loop's own plan (Recipe), so the count cannot drift from it.
    recipe = Recipe(train_set, cfg, torch.device("cpu"), torch.Generator().manual_seed(0))
    rows = len(recipe.triplets) if recipe.triplets is not None else len(train_set.ids)
    per_batch = cfg.p * cfg.k if recipe.sampler is not None else min(rows, cfg.batch_size)
    return recipe.num_batches() * per_batch * (3 if cfg.recipe == "triplet" else 1)


def samples_per_epoch(cfg: Any, train_set: Any) -> int:
    """What the budget counts in one epoch of ``cfg``'s recipe: :func:`images_per_epoch`, with a
    triplet row (three images) counted once (see the module docstring)."""
    images = images_per_epoch(cfg, train_set)
    return images // 3 if cfg.recipe == "triplet" else images


def image_cost(train_set: Any) -> float:
    """Cost of one training image relative to a 128×128 one: H·W / 128² of the cached images."""
    h, w = train_set.cache.images.shape[-2:]
    return h * w / 128 ** 2


def default_epochs(cfg: Any, train_set: Any, device: torch.device | str) -> int:
    """Epochs that give ``cfg``'s recipe the device's budget of samples on ``train_set``
    (see the module docstring); devices other than CUDA get the CPU budget."""
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    per_epoch = samples_per_epoch(cfg, train_set) * image_cost(train_set)
    return max(MIN_EPOCHS, math.ceil(IMAGE_BUDGET[kind] / per_epoch))


def epochs_from_env(default: int) -> int:
    """``REID_EPOCHS`` when set (a positive integer, else a ValueError naming it), else ``default``."""
    raw = os.environ.get(EPOCHS_ENV)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{EPOCHS_ENV}={raw!r}: expected a positive whole number of epochs")
    return value


def default_input_size(recipe: str, device: torch.device | str) -> tuple[int, int]:
    """(H, W) a recipe trains at: the handout's padded 128×128 square (C2) for "id" and
    "triplet"; the person's own 1:2 shape for "strong": 256×128 on CUDA (the size Bag of Tricks
    reports), 128×64 elsewhere (half the pixels of the square and none of them padding)."""
    if recipe != "strong":
        return (128, 128)
    return (256, 128) if torch.device(device).type == "cuda" else (128, 64)


def choose_epochs(cfg: Any, train_set: Any, device: torch.device | str, quick: bool = False,
                  quick_epochs: int = 2) -> tuple[int, str]:
    """(epochs, one line saying how they were chosen) for the notebook: ``quick_epochs`` in quick
    mode, ``REID_EPOCHS`` when set, else :func:`default_epochs`."""
    if quick:
        return quick_epochs, f"{quick_epochs} epochs (quick mode)"
    default = default_epochs(cfg, train_set, device)
    epochs = epochs_from_env(default)
    if epochs != default or os.environ.get(EPOCHS_ENV, "").strip():
        return epochs, f"{epochs} epochs ({EPOCHS_ENV}; the default here would be {default})"
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    per_epoch = samples_per_epoch(cfg, train_set)
    cost = image_cost(train_set)
    unit = "triplet rows (three images each)" if cfg.recipe == "triplet" else "images"
    counted = f"{per_epoch:,} {unit} an epoch" + (f" × {cost:g} of a 128×128 image's cost" if cost != 1 else "")
    return epochs, (f"{epochs} epochs: the {kind.upper()} budget of {IMAGE_BUDGET[kind]:,} training samples "
                    f"÷ {counted} (reid/budget.py)")


def strong_input_size(checkpoint_dir: str | os.PathLike, device: torch.device | str) -> tuple[int, int]:
    """The stronger recipe's (H, W): the one its checkpoint in ``checkpoint_dir`` recorded, if
    there is one (a run resumed on another device keeps its shape: a Colab runtime that came
    back without a GPU continues at 256×128), else :func:`default_input_size` for ``device``."""
    from pathlib import Path

    from reid.checkpoints import CheckpointError, load_checkpoint

    path = Path(checkpoint_dir) / "last.pt"
    if path.is_file():
        try:
            recorded = load_checkpoint(path, mmap=True)["cfg"].get("input_size")  # the config, not the weights
        except CheckpointError:
            recorded = None  # train_model will say what is wrong with the file
        if recorded:
            return int(recorded[0]), int(recorded[1])
    return default_input_size("strong", device)
