"""The training step: each recipe's batches and loss, the optimiser and its schedule, one epoch.

Map:
  * the data side and loss of a recipe ... Recipe ("id", "triplet", "strong")
  * everything a step touches ............ TrainRun, built by build_run (optimiser, LR schedule,
                                            gradient scaler, the shuffling generator)
  * one epoch of steps ................... train_epoch
The loop around them (validation, checkpoints, resuming, the kept epoch) is reid/train.py.
"""
from __future__ import annotations

import dataclasses
import math
import sys
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm  # plain text bars on stdout: no widget warnings on stderr

from .batching import PKSampler, random_erasing, random_flip, random_shift, shuffled_batches
from .config import MINING, RECIPES, TrainConfig
from .device import autocast, make_grad_scaler, pick_device, resolve_amp
from .distance import METRICS
from .losses import batch_all_triplet_loss, batch_hard_triplet_loss, handout_triplet_loss, id_loss, mined_triplet_loss

__all__ = ["warmup_cosine", "Recipe", "TrainRun", "make_optimizer", "build_run", "train_epoch"]


def warmup_cosine(warmup_iters: int, total_iters: int, min_factor: float = 0.01) -> Callable[[int], float]:
    """LR factor per iteration for ``LambdaLR``: linear warm-up from 1/warmup_iters to 1,
    then a cosine from 1 down to ``min_factor`` at ``total_iters``."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            return (step + 1) / warmup_iters
        t = min(1.0, (step - warmup_iters) / max(1, total_iters - warmup_iters))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor



# ------------------------------------------------------------------------------- recipes
class Recipe:
    """The data side and the loss of cfg.recipe, over a train set's tensor cache.

    "id": shuffled batches of IDLossDataset rows, CE on the logits. "triplet": shuffled
    batches of TripletDataset rows (P×K batches of rows with mining="batch_hard" / "batch_all");
    a, p, n go through the model as one batch [3B, ...] and TripletMarginLoss acts on the
    features, of the listed triplets or of triplets formed in the batch (cfg.mining,
    mined_triplet_loss, batch_all_triplet_loss). "strong": P×K batches of IDLossDataset rows,
    batch-hard triplet on the features + label-smoothed CE on the logits.
    """

    def __init__(self, data: Any, cfg: TrainConfig, device: torch.device, generator: torch.Generator):
        self.cache, self.cfg, self.device, self.g = data.cache, cfg, device, generator
        self.triplets = data.triplets.cpu() if cfg.recipe == "triplet" else None  # [T, 3]
        mined = cfg.recipe == "triplet" and cfg.mining != "none"
        if mined and getattr(data, "ids", None) is None:
            raise ValueError(f"mining={cfg.mining!r} needs the identity of every triplet image: call "
                             "TripletDataset.label_from(IDLossDataset of train_idloss.csv) first")
        self.ids = data.ids.to(device) if cfg.recipe != "triplet" or mined else None  # [N]
        self.sampler = None
        if cfg.recipe == "strong":
            self.sampler = PKSampler(data.ids, cfg.p, cfg.k, generator)
        elif mined and cfg.mining in ("batch_hard", "batch_all"):  # P ids × K rows, by the anchor's id
            self.sampler = PKSampler(data.ids.cpu()[self.triplets[:, 0]], cfg.p, cfg.k, generator)

    def num_batches(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        rows = self.triplets if self.triplets is not None else self.ids
        return max(1, len(rows) // self.cfg.batch_size)

    def plan(self) -> list[Tensor]:
        """This epoch's index batches (rows of the dataset), drawn from the generator."""
        if self.sampler is not None:
            return list(self.sampler)
        rows = self.triplets if self.triplets is not None else self.ids
        return shuffled_batches(len(rows), self.cfg.batch_size, self.g)

    def images(self, idx: Tensor) -> Tensor:
        """Batch [B, 3, H, W] float32 on ``device`` in channels_last, augmented when the config
        says so. One copy: float16 cache rows → float32 channels_last (see bench_train.py)."""
        x = self.cache.images[idx.to(self.cache.device)]  # [B, 3, H, W] float16
        x = x.to(self.device, torch.float32, non_blocking=True, memory_format=torch.channels_last)
        if self.cfg.flip:
            x = random_flip(x, self.g)
        if self.cfg.shift:
            x = random_shift(x, self.g, self.cfg.shift)
        if self.cfg.erase:
            x = random_erasing(x, self.g)
        return x.contiguous(memory_format=torch.channels_last)

    def loss(self, run: "TrainRun", idx: Tensor) -> Tensor:
        """Scalar loss of one index batch idx [B] (fp32, computed outside autocast)."""
        cfg = self.cfg
        if self.triplets is not None:
            rows = self.triplets[idx]  # [B, 3]
            flat = rows.T.reshape(-1)  # [3B]: anchors, positives, negatives
            feats, _ = run.forward(self.images(flat))  # one pass over [3B, ...]
            if self.ids is not None:
                ids = self.ids[flat.to(self.device)]  # [3B]
                if cfg.mining == "batch_all":
                    return batch_all_triplet_loss(feats, ids, cfg.margin)
                return mined_triplet_loss(feats, ids, cfg.margin, hardest_positive=cfg.mining == "batch_hard")
            a, p, n = feats.chunk(3)  # [B, D] each
            return handout_triplet_loss(a, p, n, cfg.margin)
        feats, logits = run.forward(self.images(idx))  # [B, D], [B, num_ids]
        ids = self.ids[idx.to(self.device)]  # [B]
        loss = id_loss(logits, ids, cfg.label_smoothing)
        if cfg.recipe == "strong":
            loss = loss + batch_hard_triplet_loss(feats, ids, cfg.margin)
        return loss


# ---------------------------------------------------------------------------- the loop
@dataclass
class TrainRun:
    """Everything a training step touches; built by :func:`build_run`."""

    model: nn.Module
    cfg: TrainConfig
    device: torch.device
    amp_dtype: torch.dtype | None
    generator: torch.Generator  # CPU; all data-side randomness
    recipe: Recipe
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Model forward under autocast; (feat [N, D], logits [N, C]) returned as fp32."""
        with autocast(self.device, self.amp_dtype):
            feats, logits = self.model(x)
        return feats.float(), logits.float()

    def iters_per_epoch(self) -> int:
        n = self.recipe.num_batches()
        cap = self.cfg.max_iters_per_epoch
        return n if cap is None else min(n, cap)


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one at ``cfg.lr``, or, with ``cfg.backbone_lr_factor`` ≠ 1, the
    backbone's parameters (``model.backbone``) at ``lr × factor`` and the head's at ``lr``."""
    backbone = getattr(model, "backbone", None)
    if cfg.backbone_lr_factor == 1.0 or backbone is None:
        return [{"params": list(model.parameters()), "lr": cfg.lr}]
    inside = {id(q) for q in backbone.parameters()}
    return [{"params": list(backbone.parameters()), "lr": cfg.lr * cfg.backbone_lr_factor},
            {"params": [q for q in model.parameters() if id(q) not in inside], "lr": cfg.lr}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device | None = None) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD(momentum 0.9, Nesterov) over :func:`param_groups` with cfg.weight_decay; on
    CUDA Adam/AdamW take the fused kernel (one launch per step; GradScaler unscales inside it)."""
    name, groups = cfg.optimizer.lower(), param_groups(model, cfg)
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    raise ValueError(f"TrainConfig.optimizer: expected 'adam', 'adamw' or 'sgd', got {cfg.optimizer!r}")


def build_run(model: nn.Module, cfg: TrainConfig, train_set: Any) -> TrainRun:
    """Move the model to the device and build optimiser, per-iteration LR schedule, scaler,
    the shuffling generator (seeded from cfg.seed) and the recipe over ``train_set``."""
    if cfg.recipe not in RECIPES:
        raise ValueError(f"TrainConfig.recipe: expected one of {RECIPES}, got {cfg.recipe!r}")
    if cfg.mining not in MINING:
        raise ValueError(f"TrainConfig.mining: expected one of {MINING}, got {cfg.mining!r}")
    if cfg.metric not in METRICS:
        raise ValueError(f"TrainConfig.metric: expected one of {METRICS}, got {cfg.metric!r}")
    if not cfg.backbone_lr_factor > 0:
        raise ValueError(f"TrainConfig.backbone_lr_factor: expected a positive factor, got {cfg.backbone_lr_factor!r}")
    if isinstance(cfg.shift, bool) or not isinstance(cfg.shift, int) or cfg.shift < 0:
        raise ValueError(f"TrainConfig.shift: expected the largest shift in pixels, an int >= 0 "
                         f"(0 = off), got {cfg.shift!r}")
    cfg = _with_input_size(cfg, model, train_set)
    device = pick_device(cfg.device)
    amp_dtype = resolve_amp(device, cfg.amp)
    model.to(device, memory_format=torch.channels_last)  # faster convs on CPU (oneDNN) and GPU
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg, device)
    run = TrainRun(model, cfg, device, amp_dtype, generator, Recipe(train_set, cfg, device, generator),
                   optimizer, None, make_grad_scaler(device, amp_dtype))  # type: ignore[arg-type]
    n = run.iters_per_epoch()
    schedule = warmup_cosine(round(cfg.warmup_epochs * n), cfg.epochs * n, cfg.min_lr_factor)
    run.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    return run


def _with_input_size(cfg: TrainConfig, model: nn.Module, train_set: Any) -> TrainConfig:
    """cfg with input_size filled in from the train set's cache [N, 3, H, W]; a cfg, cache or
    backbone (``.input_size``) that disagree is a ValueError naming both shapes."""
    shape = tuple(int(v) for v in train_set.cache.images.shape[-2:])
    if cfg.input_size is not None and tuple(cfg.input_size) != shape:
        raise ValueError(f"TrainConfig.input_size is {tuple(cfg.input_size)} but the training images are "
                         f"{shape} (H, W): make the datasets with image_size={tuple(cfg.input_size)}")
    built = getattr(getattr(model, "backbone", model), "input_size", None)
    if built is not None and tuple(built) != shape:
        raise ValueError(f"the model's backbone was built for {tuple(built)} inputs but the training images "
                         f"are {shape} (H, W): build it with input_size={shape}")
    return dataclasses.replace(cfg, input_size=shape)


def _check_finite(losses: list[float], first_iter: int, epoch: int, run: TrainRun) -> None:
    for i, v in enumerate(losses):
        if not math.isfinite(v):
            raise FloatingPointError(
                f"training loss is {v} at epoch {epoch + 1}/{run.cfg.epochs}, iteration "
                f"{first_iter + i + 1}/{run.iters_per_epoch()} (recipe {run.cfg.recipe!r}, lr "
                f"{run.cfg.lr}); lower the learning rate or check the inputs")


def train_epoch(run: TrainRun, epoch: int, progress: bool = False) -> list[float]:
    """One epoch of optimisation steps; returns the loss of each iteration.

    The losses stay on the device and are read once, at the end of the epoch (one host sync
    per epoch: no ``.item()`` in the step, so a CUDA run never waits on the host); a NaN/inf
    is then reported with the iteration it happened in.
    """
    run.model.train()
    batches = run.recipe.plan()[: run.iters_per_epoch()]
    pending: list[Tensor] = []
    # A notebook shows no nested text bars (the cursor-up code prints as text), so there the
    # batch bar is off and the epoch bar carries the numbers.
    bar = tqdm(batches, desc=f"epoch {epoch + 1}", file=sys.stdout, leave=False, mininterval=1.0,
               disable=not progress or "ipykernel" in sys.modules)
    for idx in bar:
        loss = run.recipe.loss(run, idx)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        with warnings.catch_warnings():  # a float16 step skipped by the scaler is expected
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
            run.scheduler.step()
        pending.append(loss.detach())
    values = torch.stack(pending).tolist() if pending else []
    _check_finite(values, 0, epoch, run)
    return values


