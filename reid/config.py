"""Training settings: TrainConfig, its presets (the handout's two models and the stronger recipe),
and the one readable line the notebook prints for a config.

What a preset sets where the handout is silent (optimiser, learning rate, schedule, augmentation)
depends on the start: random initialisation or pretrained weights (``start``); the training
budget (epochs) is chosen in reid/budget.py.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .device import resolve_precision
from .losses import HANDOUT_MARGIN
from .schedule import CurveRule
from .text import wrap

__all__ = ["TrainConfig", "RECIPES", "MINING", "RANDOM_START", "PRETRAINED", "start_of", "start_folder", "unused_fields",
           "describe_settings"]

RANDOM_START = "random"
RECIPES = ("id", "triplet", "strong")
MINING = ("none", "negative", "batch_hard", "batch_all")  # TrainConfig.mining, "triplet" recipe


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
    amp: the training precision: None = ``REID_PRECISION``, else on where it is fast (CUDA; a CPU with
    bfloat16 in hardware); True / False; "float32" / "bfloat16" / "float16" (reid/device.py,
    resolve_precision). Evaluation always runs in float32.
    epochs: the step ceiling, in epochs of this run's steps (reid/budget.py); with ``schedule="curve"``
    the val curve may stop the run sooner (patience, min_delta, lr_drops, cooldown: reid/schedule.py).
    max_iters_per_epoch caps each epoch
    (quick mode); time_budget_s stops after the epoch in which wall time exceeds it.
    input_size: (H, W) of the training images (None: whatever the train set's cache holds); the
    cache and the backbone must have it (checked by build_run, which fills it in, so every
    checkpoint records the shape it was trained at).
    flip_test: val Rank-k and mAP average each image's feature with its mirror image's
    (test-time flip; the val loss still uses the images as they are). metric: the distance
    val Rank-k and mAP rank by, "euclidean" or "cosine" (the val loss stays Euclidean).
    start: "random" (random initialisation) or "sha256:<hex>", the SHA-256 of the weights file the
    backbone was loaded from (``start_of``); a preset picks the settings measured for its start
    (PRETRAINED), and a checkpoint of one start never resumes a run of another.
    backbone_lr_factor: the backbone's learning rate relative to ``lr`` (the head's).
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
    amp: bool | str | None = None
    seed: int = 0
    max_iters_per_epoch: int | None = None
    time_budget_s: float | None = None
    eval_batch_size: int = 256
    flip_test: bool = False
    metric: str = "euclidean"
    mining: str = "none"
    device: str | None = None  # None: pick_device()
    input_size: tuple[int, int] | None = None  # (H, W) of the training images; None: the data's
    backbone_lr_factor: float = 1.0  # the backbone's learning rate is lr × this; the head's is lr
    start: str = RANDOM_START  # what the backbone started from: "random", or "sha256:<hex>" of the weights file
    start_file: str | None = None  # that file's name, for the settings line (not compared on resume)
    schedule: str = "curve"  # "curve": the val curve sets the rate and the stop (reid/schedule.py); "cosine"
    patience: int = 4  # the curve rule: epochs without a gain before the rate drops / the run stops
    min_delta: float = 0.005  # the curve rule: a gain is more than this in val mAP (mean of 3 epochs)
    lr_drops: int = 2  # the curve rule: ×0.1 drops before a levelled curve stops the run
    cooldown: float = 0.2  # the curve rule: the ceiling's last share of steps anneals the rate (cosine)
    checkpoint_every_s: float = 60.0  # last.pt at most this often (and at the end, on Ctrl-C, on errors)

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
        From a pretrained start (PRETRAINED): a 1-epoch linear warm-up, which was ahead on kept-epoch val
        mAP by 0.031 from the stand-in weights (lower and higher rates, and the backbone at 0.1× the
        head's rate, were not).

        Numbers behind each choice: bench/BENCHMARKS.md (sections 3, 4; section 7 for a pretrained start)."""
        base = cls(recipe="id", flip=True, shift=8, label_smoothing=0.0, flip_test=False)
        return _preset(base, overrides)

    @classmethod
    def handout_triplet(cls, **overrides: Any) -> "TrainConfig":
        """The handout's triplet model: ``nn.TripletMarginLoss(margin=HANDOUT_MARGIN)`` on the
        256-d feature, on the rows of train_random_triplet.csv as listed, one triplet per row.

        What the handout leaves open, our choice:
        * 32 rows (96 images) a step, Adam 3e-4 / 5e-4, cosine decay: as handout_id's optimiser;
        * random horizontal flips and shifts of up to 8 px of each image, as handout_id: the two handout
          models then differ in their loss, batch and images an epoch, not in their augmentation (Q11);
        * no mining and no identities from another file (mining="none"): the literal model;
        * validation on the plain feature (no test-time flip).
        From a pretrained start (PRETRAINED): the ID model's choice, a 1-epoch linear warm-up, also ahead
        for this model (kept-epoch val mAP, test not behind; bench/BENCHMARKS.md section 7).

        Mined variants (batch-all, batch-hard) are measured in bench/BENCHMARKS.md, not used here."""
        base = cls(recipe="triplet", margin=HANDOUT_MARGIN, mining="none", batch_size=32,
                   flip=True, shift=8, flip_test=False)
        return _preset(base, overrides)

    @classmethod
    def strong(cls, **overrides: Any) -> "TrainConfig":
        """Stronger recipe for BNNeckNet, after "Bag of Tricks" (Luo et al. 2019).

        * P=16 ids × K=4 images: every batch holds positives and negatives for the triplet loss;
        * batch-hard triplet (margin 0.3, pre-BN feature) + CE with label smoothing 0.1: the two
          losses of Bag of Tricks, each on its side of the BNNeck;
        * random flip and shift of up to 8 px: Bag of Tricks' flip and pad-and-crop;
        * Adam 1e-3 / 5e-4, 5 warm-up epochs, cosine decay over 60 epochs (an epoch is only ~28
          P×K batches): lr 1e-3 rather than Bag of Tricks' 3.5e-4 because from random weights we
          train in minutes; from the stand-in weights the lower rates (3.5e-4, 1e-4), a 1-epoch
          warm-up and the backbone at 0.1× were each within 0.02 of it on kept-epoch val mAP, so
          the same settings serve a pretrained start (bench/BENCHMARKS.md section 7);
          no random erasing (erase=True turns it on), which did not pay here;
        * cosine distance on the BN-normalised feature, test-time flip: as Bag of Tricks ranks;
        * the person at their own 1:2 shape, 128×64 (input_size; 256×128 on a GPU, see
          ``reid.budget.default_input_size``), not padded to a square: half the handout input's
          pixels were padding.

        Numbers behind each choice: bench/BENCHMARKS.md."""
        base = cls(recipe="strong", epochs=60, lr=1e-3, margin=0.3, label_smoothing=0.1,
                   p=16, k=4, batch_size=64, warmup_epochs=5.0, flip=True, shift=8, erase=False,
                   flip_test=True, metric="cosine", input_size=(128, 64))
        cfg = _preset(base, overrides)
        if "epochs" in overrides and "warmup_epochs" not in overrides:
            # A shorter run keeps the warm-up to at most a quarter of it, so the cosine decay happens.
            cfg = dataclasses.replace(cfg, warmup_epochs=min(cfg.warmup_epochs, overrides["epochs"] / 4))
        return cfg

    def curve_rule(self) -> CurveRule:
        """The rule that lowers the rate and stops the run (``schedule="curve"``; reid/schedule.py)."""
        return CurveRule(patience=self.patience, min_delta=self.min_delta, drops=self.lr_drops)

    def model_shape(self) -> tuple[int, int]:
        """(H, W) the backbone is built for: ``input_size``, or C2's 128×128 when it is None."""
        return tuple(self.input_size) if self.input_size is not None else (128, 128)

    def image_size(self) -> int | tuple[int, int]:
        """What the datasets' ``image_size`` is for this config: 128, C2's padded square, when the
        model's shape is 128×128; else (H, W), the person resized to that shape, unpadded."""
        shape = self.model_shape()
        return 128 if shape == (128, 128) else shape

    def retrieval_options(self, device: torch.device | str | None = None) -> dict[str, Any]:
        """``retrieve``'s keyword arguments that rank as this config validates: its test-time flip,
        metric and eval batch size (evaluation runs in float32 on every device: ``EVAL_DTYPE``)."""
        return {"flip": self.flip_test, "metric": self.metric, "batch_size": self.eval_batch_size}

    def describe(self, device: torch.device | str = "cpu", width: int | None = None) -> str:
        """The notebook's one settings line for this config (:func:`describe_settings`)."""
        return describe_settings(self, device, width)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        values = {f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d}
        values.setdefault("schedule", "cosine")  # recorded before curve schedules existed: a cosine over its epochs
        if values.get("input_size") is not None:  # a JSON list → (H, W)
            values["input_size"] = tuple(values["input_size"])
        return cls(**values)



PRETRAINED: dict[str, dict[str, Any]] = {"id": {"warmup_epochs": 1.0}, "triplet": {"warmup_epochs": 1.0}, "strong": {}}
"""What each preset sets differently when its backbone starts from pretrained weights (``start`` is
not "random"). Chosen from runs started from a stand-in weights file (bench/standin_weights.py),
bench/BENCHMARKS.md section 7; a setting is changed only where its kept-epoch val mAP was ahead by
more than 0.02 and its test score not behind."""


def _preset(base: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """``base`` with the settings measured for its start (PRETRAINED, when ``overrides`` give a start
    other than random), then ``overrides``."""
    start = overrides.get("start", base.start)
    tuned = PRETRAINED[base.recipe] if start != RANDOM_START else {}
    return dataclasses.replace(base, **{**tuned, **overrides})


def start_of(report: Any) -> dict[str, str | None]:
    """``{"start": …, "start_file": …}`` for a preset, from a C6 weight report (``load_imagenet_weights``'
    WeightReport): random when nothing loaded, else the file's SHA-256 and name (also for a file that
    filled only part of the backbone: the model no longer starts from random weights)."""
    if report is None or not getattr(report, "loaded", None) or not getattr(report, "sha256", None):
        return {"start": RANDOM_START, "start_file": None}
    return {"start": f"sha256:{report.sha256}", "start_file": report.file_name}


def start_folder(start: str) -> str:
    """The checkpoint folder of a start (``RUNS/<data>/<start folder>/<model>``): ``"random"``, or
    ``"pretrained-<the first 12 hex digits of the weights file's SHA-256>"``, so a run of one start
    never finds another's checkpoint."""
    return RANDOM_START if start == RANDOM_START else "pretrained-" + start.removeprefix("sha256:")[:12]


def unused_fields(recipe: str, mining: str = "none") -> set[str]:
    """Settings a recipe does not read (p, k without P×K batches; batch_size with them; margin and
    mining outside the triplet losses; …)."""
    if recipe == "id":
        return {"p", "k", "margin", "mining"}
    if recipe == "strong":
        return {"batch_size", "mining"}
    return {"batch_size"} if mining in ("batch_hard", "batch_all") else {"p", "k"}


def describe_settings(cfg: TrainConfig, device: torch.device | str = "cpu", width: int | None = None) -> str:
    """The settings this recipe reads, in one statement wrapped at ``width`` characters: the start,
    the loss, the optimiser and its schedule, batches, augmentation, input and precision. Settings
    the recipe does not read (``unused_fields``: p, k for the ID model, …) are left out."""
    parts = [_start_words(cfg), _loss_words(cfg)]
    lr = f"{cfg.optimizer.capitalize()} lr {_num(cfg.lr)}"
    if cfg.backbone_lr_factor != 1.0:
        lr += f" (backbone {cfg.backbone_lr_factor:g}×)"
    parts.append(f"{lr}, weight decay {_num(cfg.weight_decay)}")
    parts.append(schedule_words(cfg))
    if cfg.recipe == "strong" or cfg.mining in ("batch_hard", "batch_all"):
        parts.append(f"batches of P×K = {cfg.p}×{cfg.k} {'rows' if cfg.recipe == 'triplet' else 'images'}")
    elif cfg.recipe == "triplet":
        parts.append(f"{cfg.batch_size} rows ({3 * cfg.batch_size} images) a step")
    else:
        parts.append(f"batches of {cfg.batch_size} images")
    aug = [name for on, name in ((cfg.flip, "flips"), (cfg.shift, f"shifts ≤ {cfg.shift} px"),
                                 (cfg.erase, "random erasing")) if on]
    parts.append("augmentation: " + (", ".join(aug) if aug else "none"))
    if cfg.input_size is not None and tuple(cfg.input_size) != (128, 128):
        parts.append(f"input {cfg.input_size[0]}×{cfg.input_size[1]}")
    if cfg.flip_test or cfg.metric != "euclidean":
        parts.append(f"ranked by {cfg.metric} distance" + (" with test-time flip" if cfg.flip_test else ""))
    parts.append("training in " + resolve_precision(torch.device(device), cfg.amp).describe()
                 + ", evaluation in float32")
    return wrap("Settings: " + "; ".join(parts), width)


def schedule_words(cfg: TrainConfig) -> str:
    """The rate schedule and the run's length in words: the warm-up, then the curve rule and the
    ceiling, or the cosine over the epochs."""
    warm = f"{cfg.warmup_epochs:g}-epoch warm-up, then " if cfg.warmup_epochs else ""
    if cfg.schedule == "cosine":
        return f"{warm}cosine decay over {cfg.epochs} epochs"
    return (f"{warm}{cfg.curve_rule().describe()}; ceiling {cfg.epochs} epochs, the rate annealed over its "
            f"last {100 * cfg.cooldown:.0f} %")


def _num(x: float) -> str:
    """3e-4 rather than 0.0003; 3.5e-4; 0.1."""
    if x == 0 or abs(x) >= 0.01:
        return f"{x:g}"
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{float(mantissa):g}e{int(exponent)}"


def _start_words(cfg: TrainConfig) -> str:
    if cfg.start == RANDOM_START:
        return "start: random initialisation"
    return f"start: {cfg.start_file or 'pretrained weights'} (sha256 {cfg.start.removeprefix('sha256:')[:8]}…)"


def _loss_words(cfg: TrainConfig) -> str:
    smooth = f" with label smoothing {cfg.label_smoothing:g}" if cfg.label_smoothing else ""
    if cfg.recipe == "id":
        return f"nn.CrossEntropyLoss{smooth}"
    if cfg.recipe == "strong":
        return f"CE{smooth} + batch-hard triplet (margin {cfg.margin:.1f})"
    rows = {"none": "on the listed rows", "negative": "with the nearest negative in the batch",
            "batch_hard": "on batch-hard triplets of the rows", "batch_all": "on batch-all triplets of the rows"}
    return f"nn.TripletMarginLoss (margin {cfg.margin:.1f}) {rows.get(cfg.mining, cfg.mining)}"
