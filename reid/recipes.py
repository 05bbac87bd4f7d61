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

from .batching import (PKSampler, apply_erasing, apply_flip, apply_shift, draw_erasing, draw_flip, draw_shift,
                       shuffled_batches)
from .config import MINING, RECIPES, TrainConfig
from .device import Precision, autocast, pick_device, resolve_precision
from .distance import METRICS
from .schedule import CurveSchedule
from .losses import batch_all_triplet_loss, batch_hard_triplet_loss, handout_triplet_loss, id_loss, mined_triplet_loss

__all__ = ["warmup_cosine", "Recipe", "EpochPlan", "TrainRun", "make_optimizer", "build_run", "train_step",
           "train_epoch", "EpochSteps"]


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
@dataclass
class EpochPlan:
    """One epoch's batches and augmentation draws, made at the start of the epoch and moved to the
    device in one copy, so that a training step reads them where they are and never waits on the host.

    rows: ``[S, B]`` row indices of the dataset (images, or triplet rows), one batch per step;
    flip ``[S, n]`` bool, shift ``[S, 2, n]`` int64 and erase ``[S, ERASING_DRAWS, n]`` float64 for
    the n images of each step (n = B, or 3B for triplet rows), None where the recipe has none.
    """

    rows: Tensor
    flip: Tensor | None = None
    shift: Tensor | None = None
    erase: Tensor | None = None

    @property
    def steps(self) -> int:
        return len(self.rows)


class Recipe:
    """The data side and the loss of cfg.recipe, over a train set's tensor cache.

    "id": shuffled batches of IDLossDataset rows, CE on the logits. "triplet": shuffled
    batches of TripletDataset rows (P×K batches of rows with mining="batch_hard" / "batch_all");
    a, p, n go through the model as one batch [3B, ...] and TripletMarginLoss acts on the
    features, of the listed triplets or of triplets formed in the batch (cfg.mining,
    mined_triplet_loss, batch_all_triplet_loss). "strong": P×K batches of IDLossDataset rows,
    batch-hard triplet on the features + label-smoothed CE on the logits.

    The images, identities and triplet rows are held on the training device for the run's
    duration (one copy when the dataset's cache lives elsewhere, e.g. on the host), so the
    steps index them there; what the run draws at random is drawn once per epoch (:meth:`plan`).
    """

    def __init__(self, data: Any, cfg: TrainConfig, device: torch.device, generator: torch.Generator):
        self.cfg, self.device, self.g = cfg, device, generator
        self.cached = data.cache.images.to(device)  # [N, 3, H, W] float16; no copy where it already is
        self.triplets = data.triplets.to(device) if cfg.recipe == "triplet" else None  # [T, 3]
        mined = cfg.recipe == "triplet" and cfg.mining != "none"
        if mined and getattr(data, "ids", None) is None:
            raise ValueError(f"mining={cfg.mining!r} needs the identity of every triplet image: call "
                             "TripletDataset.label_from(IDLossDataset of train_idloss.csv) first")
        self.ids = data.ids.to(device) if cfg.recipe != "triplet" or mined else None  # [N]
        self.sampler = None
        if cfg.recipe == "strong":
            self.sampler = PKSampler(data.ids, cfg.p, cfg.k, generator)
        elif mined and cfg.mining in ("batch_hard", "batch_all"):  # P ids × K rows, by the anchor's id
            self.sampler = PKSampler(data.ids.cpu()[data.triplets.cpu()[:, 0]], cfg.p, cfg.k, generator)

    def num_batches(self) -> int:
        if self.sampler is not None:
            return len(self.sampler)
        rows = len(self.triplets) if self.triplets is not None else len(self.ids)
        return max(1, rows // self.cfg.batch_size)

    def batches(self) -> list[Tensor]:
        """This epoch's index batches (rows of the dataset, on the CPU), drawn from the generator."""
        if self.sampler is not None:
            return list(self.sampler)
        rows = len(self.triplets) if self.triplets is not None else len(self.ids)
        return shuffled_batches(rows, self.cfg.batch_size, self.g)

    def plan(self, steps: int | None = None) -> EpochPlan:
        """This epoch's batches (the first ``steps``) and every augmentation draw of their images, in
        that order from the generator, on the device: the one host-to-device copy of the epoch."""
        cfg, g = self.cfg, self.g
        rows = torch.stack(self.batches()[:steps])  # [S, B]
        n = rows.shape[1] * (3 if self.triplets is not None else 1)  # images a step
        s = len(rows)
        flip = torch.stack([draw_flip(n, g) for _ in range(s)]) if cfg.flip else None
        shift = torch.stack([draw_shift(n, g, cfg.shift) for _ in range(s)]) if cfg.shift else None
        erase = torch.stack([draw_erasing(n, g) for _ in range(s)]) if cfg.erase else None
        on = (lambda t: None if t is None else t.to(self.device, non_blocking=True))
        return EpochPlan(on(rows), on(flip), on(shift), on(erase))

    def images_of(self, idx: Tensor, plan: EpochPlan | None = None, step: int = 0) -> Tensor:
        """Batch [B, 3, H, W] float32 in channels_last on the device, augmented with the plan's draws
        for ``step`` when the config says so (``plan=None``: no augmentation). ``idx`` [B] is on the
        device; one copy: float16 rows → float32 channels_last (see bench_train.py)."""
        x = self.cached[idx].to(dtype=torch.float32, memory_format=torch.channels_last)
        if plan is not None:
            if plan.flip is not None:
                x = apply_flip(x, plan.flip[step])
            if plan.shift is not None:
                x = apply_shift(x, plan.shift[step], self.cfg.shift)
            if plan.erase is not None:
                x = apply_erasing(x, plan.erase[step])
        return x.contiguous(memory_format=torch.channels_last)

    def images(self, idx: Tensor) -> Tensor:
        """The batch at rows ``idx`` [B], augmented with fresh draws from the generator (benchmarks
        and tests; training uses :meth:`plan`)."""
        n, g, cfg = len(idx), self.g, self.cfg
        draws = (idx[None], draw_flip(n, g)[None] if cfg.flip else None,
                 draw_shift(n, g, cfg.shift)[None] if cfg.shift else None, draw_erasing(n, g)[None] if cfg.erase else None)
        plan = EpochPlan(*(None if t is None else t.to(self.device) for t in draws))
        return self.images_of(plan.rows[0], plan, 0)

    def loss(self, run: "TrainRun", plan: EpochPlan, step: int) -> tuple[Tensor, Tensor | None]:
        """(scalar loss of the plan's batch ``step``, fp32 and computed outside autocast; for the
        listed triplets, how many of the batch's triplets have a loss above zero — the active ones —
        as a tensor on the device, else None)."""
        cfg, idx = self.cfg, plan.rows[step]
        if self.triplets is not None:
            rows = self.triplets[idx]  # [B, 3]
            flat = rows.T.reshape(-1)  # [3B]: anchors, positives, negatives
            feats, _ = run.forward(self.images_of(flat, plan, step))  # one pass over [3B, ...]
            if self.ids is not None:
                ids = self.ids[flat]  # [3B]
                if cfg.mining == "batch_all":
                    return batch_all_triplet_loss(feats, ids, cfg.margin), None
                return mined_triplet_loss(feats, ids, cfg.margin, hardest_positive=cfg.mining == "batch_hard"), None
            a, p, n = feats.chunk(3)  # [B, D] each
            per_row = handout_triplet_loss(a, p, n, cfg.margin, reduction="none")  # [B]
            return per_row.mean(), (per_row > 0).sum()
        feats, logits = run.forward(self.images_of(idx, plan, step))  # [B, D], [B, num_ids]
        ids = self.ids[idx]  # [B]
        loss = id_loss(logits, ids, cfg.label_smoothing)
        if cfg.recipe == "strong":
            loss = loss + batch_hard_triplet_loss(feats, ids, cfg.margin)
        return loss, None


# ---------------------------------------------------------------------------- the loop
@dataclass
class TrainRun:
    """Everything a training step touches; built by :func:`build_run`."""

    model: nn.Module
    cfg: TrainConfig
    device: torch.device
    precision: Precision  # autocast dtype, GradScaler, fused Adam (reid/device.py)
    generator: torch.Generator  # CPU; all data-side randomness
    recipe: Recipe
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler

    @property
    def amp_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the training steps (None = float32)."""
        return self.precision.dtype

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


def make_optimizer(model: nn.Module, cfg: TrainConfig, fused: bool = False) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD(momentum 0.9, Nesterov) over :func:`param_groups` with cfg.weight_decay.
    ``fused`` (``Precision.fused``: on CUDA, and with the T4's float16 anywhere): Adam/AdamW take the
    fused kernel — one launch per step, the GradScaler unscaling inside it with no host sync."""
    name, groups = cfg.optimizer.lower(), param_groups(model, cfg)
    kernel = {"fused": True} if fused else {}
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kernel)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, **kernel)
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
    if cfg.schedule not in ("curve", "cosine"):
        raise ValueError(f"TrainConfig.schedule: expected 'curve' or 'cosine', got {cfg.schedule!r}")
    if cfg.metric not in METRICS:
        raise ValueError(f"TrainConfig.metric: expected one of {METRICS}, got {cfg.metric!r}")
    if not cfg.backbone_lr_factor > 0:
        raise ValueError(f"TrainConfig.backbone_lr_factor: expected a positive factor, got {cfg.backbone_lr_factor!r}")
    if isinstance(cfg.shift, bool) or not isinstance(cfg.shift, int) or cfg.shift < 0:
        raise ValueError(f"TrainConfig.shift: expected the largest shift in pixels, an int >= 0 "
                         f"(0 = off), got {cfg.shift!r}")
    cfg = _with_input_size(cfg, model, train_set)
    device = pick_device(cfg.device)
    precision = resolve_precision(device, cfg.amp)
    model.to(device, memory_format=torch.channels_last)  # faster convs on CPU (oneDNN) and GPU
    generator = torch.Generator().manual_seed(cfg.seed)
    optimizer = make_optimizer(model, cfg, fused=precision.fused)
    scaler = torch.amp.GradScaler(device.type, enabled=precision.scaler)
    run = TrainRun(model, cfg, device, precision, generator, Recipe(train_set, cfg, device, generator),
                   optimizer, None, scaler)  # type: ignore[arg-type]
    n = run.iters_per_epoch()
    if cfg.schedule == "curve":  # the val curve sets the rate after each epoch (train.py, reid/schedule.py)
        schedule: Callable[[int], float] = CurveSchedule(round(cfg.warmup_epochs * n), cfg.epochs * n,
                                                          cfg.curve_rule(), cfg.cooldown, cfg.min_lr_factor)
    else:
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
                f"{run.cfg.lr}, {run.precision.describe()}); lower the learning rate or check the inputs"
                + ("; float16 holds at most 65,504: set REID_PRECISION=float32 (or bfloat16) to "
                   "train without it" if run.precision.dtype == torch.float16 else ""))


def train_step(run: TrainRun, plan: EpochPlan, step: int) -> tuple[Tensor, Tensor | None]:
    """One optimisation step on the plan's batch ``step``: (its loss, its active triplets or None),
    both left on the device. Nothing in it waits on the host: the batch and its augmentation come
    from the plan, the GradScaler of a float16 run unscales inside fused Adam, and no value is read."""
    loss, active = run.recipe.loss(run, plan, step)
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    with warnings.catch_warnings():  # a float16 step skipped by the scaler is expected
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        run.scheduler.step()
    return loss.detach(), active


@dataclass
class EpochSteps:
    """What the steps of one epoch measured: each step's loss, and for the listed triplets the share of
    the epoch's triplets whose loss was above zero when their step ran (None for other recipes)."""

    losses: list[float]
    active_share: float | None = None
    lr: float = 0.0  # the head's learning rate in the epoch's last step


def train_epoch(run: TrainRun, epoch: int, progress: bool = False) -> EpochSteps:
    """One epoch of optimisation steps.

    The epoch's batches and augmentation draws are made first (:meth:`Recipe.plan`); the steps
    (:func:`train_step`) then run without a host sync, their losses (and active-triplet counts)
    kept on the device and read once, at the end of the epoch, where a NaN/inf is reported with
    the iteration it happened in.
    """
    run.model.train()
    plan = run.recipe.plan(run.iters_per_epoch())
    losses: list[Tensor] = []
    active: list[Tensor] = []
    # A notebook shows no nested text bars (the cursor-up code prints as text), so there the
    # batch bar is off and the epoch bar carries the numbers.
    bar = tqdm(range(plan.steps), desc=f"epoch {epoch + 1}", file=sys.stdout, leave=False, mininterval=1.0,
               disable=not progress or "ipykernel" in sys.modules)
    lr = run.optimizer.param_groups[-1]["lr"]
    for step in bar:
        lr = run.optimizer.param_groups[-1]["lr"]  # the rate this step trains at (a python float: no sync)
        loss, n_active = train_step(run, plan, step)
        losses.append(loss)
        if n_active is not None:
            active.append(n_active)
    values = torch.stack(losses).tolist() if losses else []  # the epoch's one read of the device
    _check_finite(values, 0, epoch, run)
    share = None
    if active:
        share = float(torch.stack(active).sum()) / (plan.rows.numel())
    return EpochSteps(values, share, float(lr))
