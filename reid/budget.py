"""Default training budgets: how many epochs a model gets, from its start, the device and the data.

A fixed epoch count gives a small layout few optimiser steps (40 identities × 10 images are
6 batches of 64 an epoch) and a large one many. So the budget is a number of training samples
each model sees, and the epochs follow from the data:

    epochs = ceil(budget / samples per epoch),   at least MIN_EPOCHS.

A sample is an image for the ID and stronger recipes and a row of the triplet file (an anchor
with its positive and negative) for the triplet recipe, so the triplet model gets as many
passes over its rows as the ID model over its images, at three times the images. Samples are
counted whatever their size: a budget is a number of optimiser steps at the recipe's batch size,
so the stronger recipe gets the same steps at 128×64 on a CPU as at 256×128 on a GPU (counting a
256×128 image as 2 samples and a 128×64 one as half, as before, gave it a quarter of the steps there).

The budget depends on how the backbone starts (``SAMPLE_BUDGET``):

* ``"random"`` (no weights file loaded): on a CPU 31,000 images for the ID model and rows for the
  triplet model (the ID model's 14 epochs of 35 batches of 64 on the course's 2,300 training images)
  and 62,000 images for the stronger recipe (its 35 epochs of 28 P×K batches); on CUDA 4× those,
  chosen from the CPU curves on the Market-1501 layout, not measured on a GPU (none was available).
  Measured with the literal triplet preset (bench/BENCHMARKS.md, section 4): counting a row as
  three images gave it a third of the epochs (5 on the synthetic layout), and its val Rank-1 ended far below
  that of the same model trained for 14 (results/budget/synthetic_triplet_5ep.json, _14ep.json).
* ``"pretrained"`` (C6 loaded weights): measured from runs started from a stand-in weights file
  (bench/standin_weights.py; bench/BENCHMARKS.md, section 7), read from the curves and confirmed
  with one run per model (``PRETRAINED_BUDGET``). The same on every device, so a GPU gives each
  model the steps measured here: a fine-tune peaks in few steps, and more steps wear the prior
  away rather than add to it.

``REID_EPOCHS`` overrides every model's epochs (see :func:`epochs_from_env`).
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch

from reid.config import RANDOM_START
from reid.recipes import Recipe
from reid.text import wrap

SAMPLE_BUDGET: dict[str, dict[str, dict[str, int]]] = {
    "random": {"cpu": {"id": 31_000, "triplet": 31_000, "strong": 62_000},
               "cuda": {"id": 124_000, "triplet": 124_000, "strong": 248_000}},
}
PRETRAINED_BUDGET = {"id": 31_000, "triplet": 31_000, "strong": 35_840}
"""Samples per model from a pretrained start, on every device (bench/BENCHMARKS.md section 7): on the
course's 2,300 training images, 14 epochs for the handout models (10 epochs of the ID model and 8 of
the triplet model each cost 0.018 kept-epoch val mAP) and 20 for the stronger recipe (its kept epoch
was 19 of 35, and a 20-epoch schedule cost nothing)."""
SAMPLE_BUDGET["pretrained"] = {"cpu": PRETRAINED_BUDGET, "cuda": PRETRAINED_BUDGET}
MIN_EPOCHS = 2
EPOCHS_ENV = "REID_EPOCHS"


def start_kind(cfg: Any) -> str:
    """"random" or "pretrained": which of SAMPLE_BUDGET's budgets a config's start takes."""
    return "random" if getattr(cfg, "start", RANDOM_START) == RANDOM_START else "pretrained"


def sample_budget(cfg: Any, device: torch.device | str) -> int:
    """Samples ``cfg``'s recipe sees from its start on ``device`` (devices other than CUDA: the CPU's)."""
    kind = "cuda" if torch.device(device).type == "cuda" else "cpu"
    return SAMPLE_BUDGET[start_kind(cfg)][kind][cfg.recipe]


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


def default_epochs(cfg: Any, train_set: Any, device: torch.device | str) -> int:
    """Epochs that give ``cfg``'s recipe its start's budget of samples on ``device`` (:func:`sample_budget`)
    on ``train_set``."""
    return max(MIN_EPOCHS, math.ceil(sample_budget(cfg, device) / samples_per_epoch(cfg, train_set)))


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
    start = start_kind(cfg)
    where = ("on any device" if start == "pretrained" else
             f"on {'CUDA' if torch.device(device).type == 'cuda' else 'a CPU'}")
    unit = "triplet rows" if cfg.recipe == "triplet" else "images"
    return epochs, wrap(f"{epochs} epochs = {sample_budget(cfg, device):,} {unit} ÷ {samples_per_epoch(cfg, train_set):,} "
                        f"an epoch: the budget from {start} weights {where} (reid/budget.py)")


def plan_training(preset: Any, train_set: Any, device: torch.device | str, report: Any = None,
                  quick: bool = False, **overrides: Any) -> tuple[Any, str]:
    """(TrainConfig, the line saying how its epochs were chosen) for one notebook model: ``preset``
    (``TrainConfig.handout_id`` / ``handout_triplet`` / ``strong``) for the start that model's own C6
    report says it has (``reid.config.start_of``: the weights file's SHA-256, or random), with the
    epochs of that start's budget (:func:`choose_epochs`) and ``overrides`` (quick mode's cuts)."""
    from reid.config import start_of  # noqa: PLC0415

    start = start_of(report)
    cfg = preset(**start, **overrides)
    epochs, how = choose_epochs(cfg, train_set, device, quick=quick)
    return preset(epochs=epochs, **start, **overrides), how


def strong_input_size(checkpoint_dir: str | os.PathLike, device: torch.device | str,
                      sync: Any = None) -> tuple[int, int]:
    """The stronger recipe's (H, W): the one its checkpoint in ``checkpoint_dir`` recorded, if
    there is one (a run resumed on another device keeps its shape: a Colab runtime that came
    back without a GPU continues at 256×128), else :func:`default_input_size` for ``device``.
    ``sync`` (a reid.train.CheckpointSync, the Drive copy on Colab) first brings a newer copy down."""
    from pathlib import Path

    from reid.checkpoints import CheckpointError, load_checkpoint

    if sync is not None:
        sync.pull(Path(checkpoint_dir))
    path = Path(checkpoint_dir) / "last.pt"
    if path.is_file():
        try:
            recorded = load_checkpoint(path, mmap=True)["cfg"].get("input_size")  # the config, not the weights
        except CheckpointError:
            recorded = None  # train_model will say what is wrong with the file
        if recorded:
            return int(recorded[0]), int(recorded[1])
    return default_input_size("strong", device)
