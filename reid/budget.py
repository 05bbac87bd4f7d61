"""How long each model may train: a step ceiling per device class; the val curve may stop it sooner.

A model trains until its validation curve stops gaining (reid/schedule.py: the rate drops when it
levels, and the run stops when it levels at the lowest rate) or until its device's ceiling,
whichever comes first. The ceiling is a number of optimiser steps (``STEP_CEILING``), not minutes, so
what a model learns does not depend on the machine's speed; ``TrainConfig.epochs`` holds it as
epochs of the run's own steps (:func:`default_epochs`).

* ``"cuda"``: generous, as published ReID fine-tuning schedules are (60–120 epochs): 120 epochs of the
  course's data for the ID model (35 steps an epoch) and the stronger recipe (28), 60 for the triplet
  model (71 steps of three images a row). On a GPU the curve, not the ceiling, ends a run.
* ``"cpu"``: what the slowest 2-core CPU measured does in about 15 minutes per model, validation
  included, in float32 (an AMD EPYC without AVX-512 or bfloat16, timed inside busy notebook runs: ID
  step 4.6 s, triplet step 7.7 s, stronger-recipe step 2.6 s; the same CPU quiet, in a benchmark: 3.8,
  5.6 and 2.0 s, bench/BENCHMARKS.md, section 9): 5 epochs of the ID model, 2 of the
  triplet model, 10 of the stronger recipe on the course's data — so the whole notebook fits in an
  hour there (a CPU with bfloat16 in hardware takes a fraction of it). From random weights these
  ceilings end every run while its curve still rises; the notebook says so.

The same ceilings serve both starts: from pretrained weights a curve levels sooner and stops itself.
``REID_EPOCHS`` overrides every model's ceiling (see :func:`epochs_from_env`).
"""
from __future__ import annotations

import math
import os
from typing import Any

import torch

from reid.config import RANDOM_START
from reid.recipes import Recipe
from reid.text import wrap

STEP_CEILING: dict[str, dict[str, int]] = {
    "cpu": {"id": 175, "triplet": 142, "strong": 280},
    "cuda": {"id": 4_200, "triplet": 4_260, "strong": 3_360},
}
"""Optimiser steps each model may take, per device class (devices other than CUDA: the CPU's)."""
MIN_EPOCHS = 2
EPOCHS_ENV = "REID_EPOCHS"


def start_kind(cfg: Any) -> str:
    """"random" or "pretrained": what a config's backbone starts from."""
    return "random" if getattr(cfg, "start", RANDOM_START) == RANDOM_START else "pretrained"


def device_class(device: torch.device | str) -> str:
    """``"cuda"`` or ``"cpu"`` (every device other than CUDA): the key of ``STEP_CEILING``."""
    return "cuda" if torch.device(device).type == "cuda" else "cpu"


def step_ceiling(cfg: Any, device: torch.device | str) -> int:
    """Optimiser steps ``cfg``'s recipe may take on ``device``."""
    return STEP_CEILING[device_class(device)][cfg.recipe]


def _plan_of(cfg: Any, train_set: Any) -> Recipe:
    """The training loop's own Recipe over ``train_set``, where its cache lives (no copy), to count with."""
    return Recipe(train_set, cfg, train_set.cache.images.device, torch.Generator().manual_seed(0))


def steps_per_epoch(cfg: Any, train_set: Any) -> int:
    """Optimiser steps in one epoch of ``cfg``'s recipe on ``train_set`` (the training loop's own plan)."""
    return _plan_of(cfg, train_set).num_batches()


def images_per_epoch(cfg: Any, train_set: Any) -> int:
    """Images one epoch of ``cfg``'s recipe pushes through the model (3 per triplet row).

    "id": ⌊N / batch⌋ batches of ``batch_size`` images; "triplet" (listed rows): ⌊T / batch⌋
    batches of ``batch_size`` rows × 3 images, or the P×K sampler's batches when mined;
    "strong": the P×K sampler's batches of ``p·k`` images."""
    # The batches are the training loop's own plan (Recipe), so the count cannot drift from it.
    recipe = _plan_of(cfg, train_set)
    rows = len(recipe.triplets) if recipe.triplets is not None else len(train_set.ids)
    per_batch = cfg.p * cfg.k if recipe.sampler is not None else min(rows, cfg.batch_size)
    return recipe.num_batches() * per_batch * (3 if cfg.recipe == "triplet" else 1)


def samples_per_epoch(cfg: Any, train_set: Any) -> int:
    """Samples in one epoch of ``cfg``'s recipe: :func:`images_per_epoch`, with a triplet row (three
    images) counted once (the unit of the Q11 comparison "after about the same number of images")."""
    images = images_per_epoch(cfg, train_set)
    return images // 3 if cfg.recipe == "triplet" else images


def default_epochs(cfg: Any, train_set: Any, device: torch.device | str) -> int:
    """The ceiling of ``cfg``'s recipe on ``device`` as epochs of ``train_set``: ⌈steps ÷ steps an
    epoch⌉, at least MIN_EPOCHS."""
    return max(MIN_EPOCHS, math.ceil(step_ceiling(cfg, device) / steps_per_epoch(cfg, train_set)))


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
    mode, ``REID_EPOCHS`` when set, else the device's ceiling (:func:`default_epochs`)."""
    if quick:
        return quick_epochs, f"{quick_epochs} epochs (quick mode)"
    default = default_epochs(cfg, train_set, device)
    epochs = epochs_from_env(default)
    if epochs != default or os.environ.get(EPOCHS_ENV, "").strip():
        return epochs, f"at most {epochs} epochs ({EPOCHS_ENV}; the ceiling here would be {default})"
    where = "CUDA" if device_class(device) == "cuda" else "a CPU"
    sooner = "; the val curve may stop it sooner" if getattr(cfg, "schedule", "curve") == "curve" else ""
    return epochs, wrap(f"At most {epochs} epochs = the ceiling of {step_ceiling(cfg, device):,} steps on {where} "
                        f"÷ {steps_per_epoch(cfg, train_set):,} an epoch (reid/budget.py){sooner}.")


def plan_training(preset: Any, train_set: Any, device: torch.device | str, report: Any = None,
                  quick: bool = False, **overrides: Any) -> tuple[Any, str]:
    """(TrainConfig, the line saying how its epochs were chosen) for one notebook model: ``preset``
    (``TrainConfig.handout_id`` / ``handout_triplet`` / ``strong``) for the start that model's own C6
    report says it has (``reid.config.start_of``: the weights file's SHA-256, or random), with the
    device's ceiling as its epochs (:func:`choose_epochs`) and ``overrides`` (quick mode's cuts)."""
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


def ceiling_steps(cfg: Any, train_set: Any) -> int:
    """The optimiser steps ``cfg`` may take on ``train_set``: its epochs (the ceiling) × the steps of one of
    its epochs (capped by ``max_iters_per_epoch``, quick mode's cut)."""
    per_epoch = steps_per_epoch(cfg, train_set)
    if cfg.max_iters_per_epoch is not None:
        per_epoch = min(per_epoch, cfg.max_iters_per_epoch)
    return cfg.epochs * per_epoch
