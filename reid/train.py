"""Training: TrainConfig (the presets), History, the loop, per-epoch validation, resuming.

Map (handout words → code):
  * settings and presets ........ TrainConfig (handout_id, handout_triplet, strong)
  * what a run measured ......... History
  * the loop .................... train_model -> History (build_run, Recipe, train_epoch)
  * validation after each epoch . evaluate_val (reid/validation.py: val Rank-k / mAP, val loss)

The parts it uses live in their own modules: reid/device.py (device, AMP, seeds),
reid/losses.py (ID and triplet losses), reid/batching.py (P×K sampling, flip, shift,
erasing), reid/checkpoints.py (atomic save, checked load, RNG states) and
reid/evaluate.py (features, distances, metrics).

Everything the loop draws at random (shuffles, P×K picks, flips, erasing) comes from one
CPU ``torch.Generator`` seeded with ``cfg.seed``; dropout uses torch's global RNG, seeded
by ``seed_everything``. Both are checkpointed, so a resumed CPU run repeats an
uninterrupted one number for number.
"""
from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn
from tqdm import tqdm  # plain text bars on stdout: no widget warnings on stderr

from .batching import PKSampler, random_erasing, random_flip, random_shift, shuffled_batches
from .checkpoints import (CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, rng_state, save_checkpoint,
                          set_rng_state)
from .device import autocast, make_grad_scaler, pick_device, resolve_amp, seed_everything
from .distance import METRICS
from .losses import (HANDOUT_MARGIN, batch_all_triplet_loss, batch_hard_triplet_loss, handout_triplet_loss,
                     id_loss, mined_triplet_loss, random_triplets)
from .validation import _triplet_value, _val_images, evaluate_val, validation_loss  # noqa: F401

__all__ = ["TrainConfig", "History", "train_model", "evaluate_val", "build_run", "train_epoch",
           "warmup_cosine", "validation_loss"]

VAL_TRIPLET_SEED = 1234  # fixed for every recipe, so validation-loss curves compare
CHECKPOINT_NAME = "last.pt"
RECIPES = ("id", "triplet", "strong")
MINING = ("none", "negative", "batch_hard", "batch_all")  # TrainConfig.mining, "triplet" recipe



def warmup_cosine(warmup_iters: int, total_iters: int, min_factor: float = 0.01) -> Callable[[int], float]:
    """LR factor per iteration for ``LambdaLR``: linear warm-up from 1/warmup_iters to 1,
    then a cosine from 1 down to ``min_factor`` at ``total_iters``."""

    def factor(step: int) -> float:
        if step < warmup_iters:
            return (step + 1) / warmup_iters
        t = min(1.0, (step - warmup_iters) / max(1, total_iters - warmup_iters))
        return min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * t))

    return factor


# ------------------------------------------------------------------------ config, history
@dataclass
class TrainConfig:
    """Settings of one training run (see the presets for the values we use and why).

    recipe: "id" (CE on logits, IDLossDataset), "triplet" (TripletMarginLoss on features,
    TripletDataset) or "strong" (batch-hard triplet + label-smoothed CE on P×K batches).
    batch_size counts images for "id", triplets for "triplet" (3× the images per step);
    "strong" uses p × k images, "triplet" with mining="batch_hard" / "batch_all" p × k triplets.
    flip / shift / erase: training augmentation, in that order: random horizontal flip, a
    random translation of up to ``shift`` pixels each way with zero fill (random_shift; 0 =
    off) and random erasing.
    amp: None = on where it is fast (CUDA; a CPU with bfloat16 in hardware, see resolve_amp).
    max_iters_per_epoch caps each epoch
    (quick mode); time_budget_s stops after the epoch in which wall time exceeds it.
    input_size: (H, W) of the training images (None: whatever the train set's cache holds); the
    cache and the backbone must have it (checked by build_run, which fills it in, so every
    checkpoint records the shape it was trained at).
    flip_test: val Rank-k and mAP average each image's feature with its mirror image's
    (test-time flip; the val loss still uses the images as they are). metric: the distance
    val Rank-k and mAP rank by, "euclidean" or "cosine" (the val loss stays Euclidean).
    mining ("triplet" only; identities from train_idloss.csv, see TripletDataset.label_from):
    "none" trains on the CSV's triplets as they are; "negative" keeps each listed anchor and
    positive and takes as negative the nearest image of another identity among the batch's 3B
    images; "batch_hard" draws batches of p anchor identities × k listed triplets (a PKSampler
    over the rows by their anchor's identity: each epoch uses ⌊n/k⌋·k of an identity's n rows,
    a different draw each epoch) and takes for each anchor the farthest image of its identity and
    the nearest of another among the batch's 3·p·k images (Hermans et al. 2017's batch-hard
    triplets, built from the CSV's rows); "batch_all" draws the same batches and averages the
    loss over every violating triplet of a listed anchor with the batch's images.
    """

    recipe: str = "id"
    epochs: int = 40
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 5e-4
    optimizer: str = "adam"  # "adam" | "adamw" | "sgd" (momentum 0.9, Nesterov)
    margin: float = HANDOUT_MARGIN
    label_smoothing: float = 0.0
    p: int = 16
    k: int = 4
    warmup_epochs: float = 0.0
    min_lr_factor: float = 0.01
    flip: bool = False
    shift: int = 0
    erase: bool = False
    amp: bool | None = None
    seed: int = 0
    max_iters_per_epoch: int | None = None
    time_budget_s: float | None = None
    eval_batch_size: int = 256
    flip_test: bool = False
    metric: str = "euclidean"
    mining: str = "none"
    device: str | None = None  # None: pick_device()
    input_size: tuple[int, int] | None = None  # (H, W) of the training images; None: the data's

    @classmethod
    def handout_id(cls, **overrides: Any) -> "TrainConfig":
        """The handout's ID-loss model: plain ``nn.CrossEntropyLoss`` on the C7 head's scores.

        What the handout leaves open, our choice:
        * batch 64, Adam 3e-4 with L2 5e-4: the usual ReID Adam setting;
        * cosine decay, no warm-up: the net is small and BN keeps early steps tame;
        * random horizontal flips and shifts of up to 8 px (train-time augmentation): with
          ~10 images per identity the plain recipe memorises its training images;
        * validation on the plain feature (no test-time flip): the headline numbers are the
          handout model's own.

        Numbers behind each choice: bench/BENCHMARKS.md."""
        base = cls(recipe="id", flip=True, shift=8, label_smoothing=0.0, flip_test=False)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def handout_triplet(cls, **overrides: Any) -> "TrainConfig":
        """The handout's triplet model: ``nn.TripletMarginLoss(margin=HANDOUT_MARGIN)`` on the
        256-d feature, on the rows of train_random_triplet.csv as listed, one triplet per row.

        What the handout leaves open, our choice:
        * 32 rows (96 images) a step, Adam 3e-4 / 5e-4, cosine decay: as handout_id's optimiser;
        * random horizontal flips of each image: a person mirrored is the same person;
        * no mining and no identities from another file (mining="none"): the literal model;
        * validation on the plain feature (no test-time flip).

        Mined variants (batch-all, batch-hard) are measured in bench/BENCHMARKS.md, not used here."""
        base = cls(recipe="triplet", margin=HANDOUT_MARGIN, mining="none", batch_size=32,
                   flip=True, flip_test=False)
        return dataclasses.replace(base, **overrides)

    @classmethod
    def strong(cls, **overrides: Any) -> "TrainConfig":
        """Stronger recipe for BNNeckNet, after "Bag of Tricks" (Luo et al. 2019).

        * P=16 ids × K=4 images: every batch holds positives and negatives for the triplet loss;
        * batch-hard triplet (margin 0.3, pre-BN feature) + CE with label smoothing 0.1: the two
          losses of Bag of Tricks, each on its side of the BNNeck;
        * random flip and shift of up to 8 px: Bag of Tricks' flip and pad-and-crop;
        * Adam 1e-3 / 5e-4, 5 warm-up epochs, cosine decay over 60 epochs (an epoch is only ~28
          P×K batches): lr 1e-3 rather than Bag of Tricks' 3.5e-4 because we train from scratch
          in minutes; no random erasing (erase=True turns it on), which did not pay here;
        * cosine distance on the BN-normalised feature, test-time flip: as Bag of Tricks ranks;
        * the person at their own 1:2 shape, 128×64 (input_size; 256×128 on a GPU, see
          ``reid.budget.default_input_size``), not padded to a square: half the handout input's
          pixels were padding.

        Numbers behind each choice: bench/BENCHMARKS.md."""
        base = cls(recipe="strong", epochs=60, lr=1e-3, margin=0.3, label_smoothing=0.1,
                   p=16, k=4, batch_size=64, warmup_epochs=5.0, flip=True, shift=8, erase=False,
                   flip_test=True, metric="cosine", input_size=(128, 64))
        if "epochs" in overrides and "warmup_epochs" not in overrides:
            # A shorter run keeps the warm-up to at most a quarter of it, so the cosine decay happens.
            overrides["warmup_epochs"] = min(base.warmup_epochs, overrides["epochs"] / 4)
        return dataclasses.replace(base, **overrides)

    def model_shape(self) -> tuple[int, int]:
        """(H, W) the backbone is built for: ``input_size``, or C2's 128×128 when it is None."""
        return tuple(self.input_size) if self.input_size is not None else (128, 128)

    def image_size(self) -> int | tuple[int, int]:
        """What the datasets' ``image_size`` is for this config: 128, C2's padded square, when the
        model's shape is 128×128; else (H, W), the person resized to that shape, unpadded."""
        shape = self.model_shape()
        return 128 if shape == (128, 128) else shape

    def retrieval_options(self, device: torch.device | str) -> dict[str, Any]:
        """``retrieve``'s keyword arguments that rank as this config validates on ``device``: its
        test-time flip, metric, eval batch size and precision (``resolve_amp``: bfloat16 autocast
        where it turns it on, else None)."""
        return {"flip": self.flip_test, "metric": self.metric, "batch_size": self.eval_batch_size,
                "amp_dtype": resolve_amp(torch.device(device), self.amp)}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        if values.get("input_size") is not None:  # a JSON list → (H, W)
            values["input_size"] = tuple(values["input_size"])
        return cls(**values)


@dataclass
class History:
    """What a run measured. Per iteration: iter_loss. Per completed epoch: the rest.

    rank1/5/10 and mAP are fractions on the val split; val_loss is the fixed-val-triplet
    margin loss (see :func:`train_model`; None without val_idloss). epoch_seconds: the
    training part of each epoch; elapsed_seconds: cumulative wall time at each epoch end,
    validation and checkpoint included (what the time budget counts).

    ``last_retrieval``: the last validation's :class:`~reid.evaluate.Retrieval` (features and
    distances of the model as it ended), when that validation ran in this process; reports reuse
    it instead of measuring the model again. Not a field: ``to_dict``, JSON and checkpoints
    leave it out, and a history read back has None.
    """

    last_retrieval: ClassVar[Retrieval | None] = None

    recipe: str = ""
    iter_loss: list[float] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    rank1: list[float | None] = field(default_factory=list)
    rank5: list[float | None] = field(default_factory=list)
    rank10: list[float | None] = field(default_factory=list)
    mAP: list[float | None] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)
    elapsed_seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_train_loss)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "History":
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    def save_json(self, path: str | Path) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load_json(cls, path: str | Path) -> "History":
        return cls.from_dict(json.loads(Path(path).read_text()))


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


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device | None = None) -> torch.optim.Optimizer:
    """Adam / AdamW / SGD(momentum 0.9, Nesterov) with cfg.lr and cfg.weight_decay; on CUDA
    Adam/AdamW take the fused kernel (one launch per step; GradScaler unscales inside it)."""
    name, params = cfg.optimizer.lower(), model.parameters()
    fused = {"fused": True} if device is not None and device.type == "cuda" else {}
    if name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)
    if name == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
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


# ---------------------------------------------------------------------------- checkpoints
def _checkpoint_state(run: TrainRun, history: History, epochs_done: int) -> dict[str, Any]:
    return {"format": CHECKPOINT_FORMAT, "epoch": epochs_done, "cfg": run.cfg.to_dict(),
            "history": history.to_dict(), "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
            "scaler": run.scaler.state_dict(), "rng": rng_state(run.generator)}


# Settings a resumed run may change: they say how the run is run, not what it trains. More
# epochs (or a budget) continue a finished run; another device (a Colab runtime that came back
# without a GPU) may bring another batch size or precision.
_RESUMABLE_CHANGES = {"epochs", "time_budget_s", "device", "eval_batch_size", "batch_size", "amp",
                      "max_iters_per_epoch", "warmup_epochs"}  # (the strong preset's warm-up follows its epochs)


def _restore(run: TrainRun, state: dict[str, Any], path: Path) -> History:
    # A setting added after the checkpoint was written reads as its default.
    saved, now = TrainConfig.from_dict(state["cfg"]).to_dict(), run.cfg.to_dict()
    if saved.get("input_size") is None:  # written before the shape was recorded: 128×128 then
        saved["input_size"] = (128, 128)
    changed = [f"{k}: {saved.get(k)!r} → {v!r}" for k, v in now.items()
               if k not in _RESUMABLE_CHANGES and saved.get(k) != v]
    if changed:
        raise CheckpointError(f"{path} was written with other settings ({'; '.join(changed)}); "
                              f"resuming would mix two runs. Use another checkpoint_dir, delete "
                              f"the file, or train with resume=False.")
    try:
        run.model.load_state_dict(state["model"])
    except RuntimeError as e:  # missing / unexpected keys or shape mismatches
        raise CheckpointError(f"{path} holds another model's weights ({e}). Use another "
                              f"checkpoint_dir, delete the file, or train with resume=False.") from e
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    _continue_schedule(run, int(state["epoch"]))
    if run.scaler.is_enabled() and state["scaler"]:  # a run without a scaler (CPU, bfloat16) resumed
        run.scaler.load_state_dict(state["scaler"])    # under float16 starts with a fresh one
    set_rng_state(state["rng"], run.generator)
    return History.from_dict(state["history"])


def _continue_schedule(run: TrainRun, epochs_done: int) -> None:
    """Put the LR schedule at the start of epoch ``epochs_done`` of this run's plan, so that a
    resume with another batch size (other iterations per epoch) or more epochs follows its
    own schedule from there; with nothing changed it is where the checkpoint left it."""
    sched = run.scheduler
    sched.last_epoch = epochs_done * run.iters_per_epoch()
    lrs = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
    for group, lr in zip(run.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs


# --------------------------------------------------------------------------- train_model
def train_model(model: nn.Module, cfg: TrainConfig, train_set: Any, val_set: Any,
                val_idloss: Any = None, checkpoint_dir: str | Path | None = None,
                resume: bool = False, progress: bool = True) -> History:
    """Train ``model`` with ``cfg``'s recipe, validating after every epoch.

    train_set: IDLossDataset ("id", "strong") or TripletDataset ("triplet"); batches index
    its tensor cache directly, in an order drawn from a generator seeded with cfg.seed.
    val_set: RetrievalDataset (val) → Rank-1/5/10 (val gt) and mAP (query id = its gt
    gallery index, gallery id = position) per epoch; None skips validation.

    Validation loss: val identities are not training identities, so the classifier's CE
    cannot be computed on them. Instead, once and with a fixed seed (VAL_TRIPLET_SEED), one
    triplet per image of ``val_idloss`` (IDLossDataset of val_idloss.csv) is drawn: the
    image as anchor, a random same-id positive, a random other-id negative. Each epoch the
    val loss is TripletMarginLoss(margin=HANDOUT_MARGIN) over those triplets on the model's
    feature (forward's first output) in eval mode: one definition for every recipe.

    checkpoint_dir: after each epoch, ``last.pt`` (model, optimiser, scheduler, scaler,
    history, cfg, epoch, RNG states) is replaced atomically; resume=True continues from it.
    Ctrl-C returns the history of the completed epochs with interrupted=True (the model is
    reset to the checkpoint when there is one). A NaN/inf loss raises FloatingPointError
    naming the epoch and iteration. ``progress``: one line per epoch (:func:`epoch_line`) and,
    outside a notebook, a bar over each epoch's batches, on stdout.
    """
    seed_everything(cfg.seed)
    run = build_run(model, cfg, train_set)
    history = History(recipe=cfg.recipe)
    ckpt = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir is not None else None
    ours = False  # does ckpt hold this run's state? (an old run's file must not be restored)
    if resume and ckpt is not None and ckpt.exists():
        history, ours = _restore(run, load_checkpoint(ckpt), ckpt), True
        history.interrupted = False
        print(f"Resuming from {ckpt}: {history.epochs_done} of {cfg.epochs} epochs done.")
    elif resume:
        print(f"No checkpoint at {ckpt}; training from scratch.")
    val_triplets = None
    if val_idloss is not None:
        val_triplets = random_triplets(val_idloss.ids.cpu(), torch.Generator().manual_seed(VAL_TRIPLET_SEED))

    start = history.epochs_done
    offset = history.elapsed_seconds[-1] if history.elapsed_seconds else 0.0
    t_start = time.perf_counter()
    epoch = start
    try:
        for epoch in range(start, cfg.epochs):
            t0 = time.perf_counter()
            losses = train_epoch(run, epoch, progress)
            train_seconds = time.perf_counter() - t0
            metrics = evaluate_val(run, val_set, val_idloss, val_triplets) if val_set is not None else {}
            history.last_retrieval = metrics.pop("retrieval", None)
            _append_epoch(history, losses, metrics, train_seconds,
                          offset + time.perf_counter() - t_start)
            if ckpt is not None:
                save_checkpoint(ckpt, _checkpoint_state(run, history, epoch + 1))
                ours = True
                history.elapsed_seconds[-1] = offset + time.perf_counter() - t_start
            if progress:
                print(epoch_line(history, cfg.epochs), flush=True)
            if cfg.time_budget_s is not None and history.elapsed_seconds[-1] >= cfg.time_budget_s:
                print(f"Time budget of {cfg.time_budget_s:.0f} s reached after epoch {epoch + 1}.")
                break
    except KeyboardInterrupt:
        history = _on_interrupt(run, history, ckpt if ours else None, epoch)
    return history


def epoch_line(history: History, epochs: int) -> str:
    """The line printed after each epoch: ``epoch 3/14: train loss 2.345, val loss 0.456,
    Rank-1 0.321, Rank-5 …, mAP …, 41 s`` (one line per epoch, no progress-bar fragments)."""
    e = history.epochs_done
    parts = [f"epoch {e}/{epochs}: train loss {history.epoch_train_loss[-1]:.4f}"]
    for key, label in (("val_loss", "val loss"), ("rank1", "Rank-1"), ("rank5", "Rank-5"),
                       ("rank10", "Rank-10"), ("mAP", "mAP")):
        value = getattr(history, key)[-1]
        if value is not None:
            parts.append(f"{label} {value:.3f}")
    parts.append(f"{history.epoch_seconds[-1]:.0f} s")
    return ", ".join(parts)


def _append_epoch(history: History, losses: list[float], metrics: dict[str, float | None],
                  train_seconds: float, elapsed: float) -> None:
    history.iter_loss += losses
    history.epoch_train_loss.append(sum(losses) / max(1, len(losses)))
    for key in ("val_loss", "rank1", "rank5", "rank10", "mAP"):
        getattr(history, key).append(metrics.get(key))
    history.epoch_seconds.append(train_seconds)
    history.elapsed_seconds.append(elapsed)


def _on_interrupt(run: TrainRun, history: History, ckpt: Path | None, epoch: int) -> History:
    """After Ctrl-C: model and history go back to this run's checkpoint, if it has one."""
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        run.model.load_state_dict(state["model"])
        history = History.from_dict(state["history"])
        where = (f"The model is back at the end of epoch {history.epochs_done} ({ckpt}); to "
                 f"continue, call train_model(..., checkpoint_dir={str(ckpt.parent)!r}, resume=True).")
    else:
        where = "No checkpoint of this run was written: the model holds mid-epoch weights."
    history.interrupted = True
    history.last_retrieval = None  # measured on weights the model no longer (or not yet) holds
    print(f"Interrupted during epoch {epoch + 1}; the history covers {history.epochs_done} "
          f"completed epoch(s). {where}")
    return history
