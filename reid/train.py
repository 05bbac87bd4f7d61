"""The training loop: train_model validates after every epoch, checkpoints, resumes, keeps the best epoch.

Map (handout words → code):
  * settings and presets ........ TrainConfig (reid/config.py: handout_id, handout_triplet, strong)
  * what a run measured ......... History
  * the loop .................... train_model -> History (one epoch of steps: reid/recipes.py)
  * validation after each epoch . evaluate_val (reid/validation.py: val Rank-k / mAP, val loss)
  * the model kept .............. the epoch with the best val mAP (``best.pt``; ``last.pt`` resumes)

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

import contextlib
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Protocol

import torch
from torch import nn

from .checkpoints import (CHECKPOINT_FORMAT, CheckpointError, load_checkpoint, rng_state, save_checkpoint,
                          set_rng_state)
from .config import MINING, RECIPES, TrainConfig  # noqa: F401  (re-exported: reid.train.TrainConfig)
from .device import load_optimizer_state, peak_memory, reset_peak_memory, seed_everything
from .evaluate import Retrieval
from .losses import random_triplets
from .recipes import EpochSteps, Recipe, TrainRun, build_run, train_epoch, warmup_cosine  # noqa: F401  (re-exported)
from .schedule import CurveSchedule, Progress, follow_curve, stop_words
from .text import wrap
from .validation import evaluate_val, validation_loss  # noqa: F401  (re-exported)

__all__ = ["TrainConfig", "History", "train_model", "evaluate_val", "build_run", "train_epoch",
           "warmup_cosine", "validation_loss", "CheckpointSync", "KEEP_METRIC"]

VAL_TRIPLET_SEED = 1234  # fixed for every recipe, so validation-loss curves compare
CHECKPOINT_NAME = "last.pt"
BEST_NAME = "best.pt"
KEEP_METRIC = "mAP"
"""The val metric that chooses the epoch whose weights are kept (the first epoch with its highest value)."""


@dataclass
class History:
    """What a run measured. Per iteration: iter_loss. Per completed epoch: the rest.

    rank1/5/10 and mAP are fractions on the val split; match_rank holds each val query's 1-based
    rank of its match (a list per epoch; empty in histories recorded before it existed); val_loss is the fixed-val-triplet
    margin loss (see :func:`train_model`; None without val_idloss). epoch_seconds: the
    training part of each epoch; elapsed_seconds: cumulative wall time at each epoch end,
    validation and checkpoint included (what the time budget counts).

    ``kept_epoch``: the epoch whose weights the model holds after :func:`train_model` — the
    first with the highest val mAP (``KEEP_METRIC``), or the last without validation. Curves show
    every epoch; tables, figures and predictions use the kept one.

    ``active_triplets``: for the handout's triplet model, the share of the epoch's listed triplets whose
    loss was above zero when their step ran (the ones still teaching; None for other recipes).
    ``stop_reason``: set when the validation curve stopped the run (reid/schedule.py); such a run is
    complete, and resuming it trains no further.

    ``kept_retrieval``: the :class:`~reid.evaluate.Retrieval` (features and distances) of the kept
    epoch's validation, when that validation ran in this process; reports reuse it instead of
    measuring the model again. Not a field: ``to_dict``, JSON and checkpoints leave it out, and a
    history read back has None.
    """

    kept_retrieval: ClassVar[Retrieval | None] = None

    recipe: str = ""
    iter_loss: list[float] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    rank1: list[float | None] = field(default_factory=list)
    rank5: list[float | None] = field(default_factory=list)
    rank10: list[float | None] = field(default_factory=list)
    mAP: list[float | None] = field(default_factory=list)
    match_rank: list[list[int] | None] = field(default_factory=list)  # per epoch: each val query's rank of its match
    active_triplets: list[float | None] = field(default_factory=list)  # per epoch: share of listed triplets with loss > 0
    lr: list[float] = field(default_factory=list)  # per epoch: the head's learning rate in the epoch's last step
    stop_reason: str | None = None  # why training ended before its ceiling ("levelled: ..."); None: not stopped
    keep_from: int = 1  # the first epoch whose weights can be kept (later only when a resume found best.pt lost)
    epoch_seconds: list[float] = field(default_factory=list)
    elapsed_seconds: list[float] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epochs_done(self) -> int:
        return len(self.epoch_train_loss)

    def progress(self, rule: Any) -> Progress:
        """Where the val curve (``KEEP_METRIC``) stands under ``rule`` (:func:`reid.schedule.follow_curve`)."""
        return follow_curve(getattr(self, KEEP_METRIC), rule)

    @property
    def kept_epoch(self) -> int | None:
        """1-based epoch kept: the first with the highest val ``KEEP_METRIC`` (from epoch ``keep_from`` on);
        the last epoch when no epoch has one; None before the first epoch."""
        values = getattr(self, KEEP_METRIC)
        scored = [(v, -i) for i, v in enumerate(values) if v is not None and i + 1 >= self.keep_from]
        if scored:
            return -max(scored)[1] + 1
        return self.epochs_done or None

    def at_kept(self, key: str) -> float | None:
        """A per-epoch measurement (``"rank1"``, ``"mAP"``, …) at the kept epoch."""
        e = self.kept_epoch
        return None if e is None else getattr(self, key)[e - 1]

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


# ---------------------------------------------------------------------------- checkpoints
def _host_copy(obj: Any) -> Any:
    """``obj`` (nested dicts, lists and tuples of tensors) with every tensor copied to the host: a
    snapshot that the next steps' in-place updates cannot change."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _host_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_host_copy(v) for v in obj)
    return obj


def _checkpoint_state(run: TrainRun, history: History, epochs_done: int, kept: "_Kept",
                      weights: dict[str, Any]) -> dict[str, Any]:
    """What last.pt holds, copied to the host: everything a resume needs (``weights``: the model's, a host
    copy), and the kept epoch's weights when they are not the last epoch's (``kept_model``), so best.pt
    can always be rebuilt from it."""
    state = _host_copy({"format": CHECKPOINT_FORMAT, "epoch": epochs_done, "cfg": run.cfg.to_dict(),
                        "history": history.to_dict(), "optimizer": run.optimizer.state_dict(),
                        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
                        "rng": rng_state(run.generator)})
    state["model"] = weights
    state["kept_epoch"] = kept.epoch
    state["kept_model"] = kept.state["model"] if kept.state is not None and kept.epoch != epochs_done else None
    return state


def _best_state(run: TrainRun, epoch: int, model_state: dict[str, Any] | None = None) -> dict[str, Any]:
    """What best.pt holds: the kept epoch's weights, its number and the run's settings (start included)."""
    return {"format": CHECKPOINT_FORMAT, "kind": "best", "epoch": epoch, "cfg": run.cfg.to_dict(),
            "model": model_state if model_state is not None else run.model.state_dict()}


# Settings a resumed run may change: they say how the run is run, not what it trains. More
# epochs (or a budget) continue a finished run; another device (a Colab runtime that came back
# without a GPU) may bring another batch size or precision; the weights file may be renamed
# (``start``, its SHA-256, may not change).
_RESUMABLE_CHANGES = {"epochs", "time_budget_s", "device", "eval_batch_size", "batch_size", "amp",
                      "max_iters_per_epoch", "warmup_epochs", "start_file", "checkpoint_every_s"}  # (the strong preset's warm-up follows its epochs)


def _check_same_run(run: TrainRun, state: dict[str, Any], path: Path) -> None:
    """CheckpointError unless ``state`` was written by a run with this run's settings (those in
    _RESUMABLE_CHANGES may differ). A from-scratch checkpoint never loads into a pretrained run, nor
    the reverse: their ``start`` differs."""
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


def _load_weights(model: nn.Module, state: dict[str, Any], path: Path) -> None:
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:  # missing / unexpected keys or shape mismatches
        raise CheckpointError(f"{path} holds another model's weights ({e}). Use another "
                              f"checkpoint_dir, delete the file, or train with resume=False.") from e


def _restore(run: TrainRun, state: dict[str, Any], path: Path) -> History:
    _check_same_run(run, state, path)
    _load_weights(run.model, state, path)
    load_optimizer_state(run.optimizer, state["optimizer"])  # keeps this run's fused / foreach flags
    history = History.from_dict(state["history"])
    _continue_schedule(run, int(state["epoch"]), history)
    if run.scaler.is_enabled() and state["scaler"]:  # a run without a scaler (CPU, bfloat16) resumed
        run.scaler.load_state_dict(state["scaler"])    # under float16 starts with a fresh one
    set_rng_state(state["rng"], run.generator)
    return history


def _continue_schedule(run: TrainRun, epochs_done: int, history: History | None = None) -> None:
    """Put the LR schedule at the start of epoch ``epochs_done`` of this run's plan, so that a
    resume with another batch size (other iterations per epoch) or more epochs follows its
    own schedule from there; the rate drops of a curve-following run are read again from its
    History (:func:`reid.schedule.follow_curve`), so they need no state of their own."""
    if history is not None:
        _set_level(run, history.progress(run.cfg.curve_rule()).level)
    run.scheduler.last_epoch = epochs_done * run.iters_per_epoch()
    _apply_schedule(run)


def _set_level(run: TrainRun, level: int) -> None:
    """The rate level of a curve-following schedule (reid/schedule.py); no-op for a cosine."""
    for fn in run.scheduler.lr_lambdas:
        if isinstance(fn, CurveSchedule):
            fn.level = level


def _apply_schedule(run: TrainRun) -> None:
    """Set each group's rate to what the schedule gives at its current step (after a resume or a level
    change, so the next step already trains at it)."""
    sched = run.scheduler
    lrs = [base * fn(sched.last_epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
    for group, lr in zip(run.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = lrs


class CheckpointSync(Protocol):
    """Keeps a second copy of a run's checkpoint folder (on Colab: the Drive copy of checkpoints written
    to the runtime's own disk; see ``reid.colab.DriveMirror``). ``pull`` runs before resuming and may
    replace the local files with newer ones; ``push`` runs after each save (``final`` at the end of
    training and on Ctrl-C, when it must copy whatever it has not yet)."""

    def pull(self, local_dir: Path) -> None: ...

    def push(self, local_dir: Path, final: bool = False) -> None: ...


@dataclass
class _Kept:
    """The kept epoch while training runs: its number, its weights (a host copy, written to best.pt at
    each save point) and its validation's Retrieval when measured in this process."""

    path: Path | None
    epoch: int | None = None
    state: dict[str, Any] | None = None
    retrieval: Retrieval | None = None
    written: int | None = None  # the epoch best.pt holds

    def update(self, run: TrainRun, epoch: int, retrieval: Retrieval | None, weights: dict[str, Any]) -> None:
        """Epoch ``epoch`` is the kept one now: ``weights``, a host copy of its weights (best.pt follows at
        the next save point, after last.pt, which also holds them)."""
        self.state = _best_state(run, epoch, weights)
        self.epoch, self.retrieval = epoch, retrieval

    def write(self) -> None:
        """best.pt ← the kept weights, unless it holds them already."""
        if self.path is not None and self.state is not None and self.written != self.epoch:
            save_checkpoint(self.path, self.state)
            self.written = self.epoch

    def recover(self, run: TrainRun, history: History, last: Path, state: dict[str, Any]) -> None:
        """On resume: check best.pt against last.pt (``state``). best.pt may hold another epoch than the
        kept one — older (a crash between writing last.pt and best.pt) or newer (a Drive copy of an
        earlier last.pt beside a later best.pt) — or be lost: it is rewritten from last.pt, which holds
        the kept epoch's weights (``kept_model``, or its own when the kept epoch is its last). A last.pt
        written before it held them, whose best.pt cannot be mended, makes the last epoch the first one
        that can be kept (``History.keep_from``), so the history never names weights the model cannot hold."""
        kept = history.kept_epoch
        if self.path is None or kept is None:
            return
        if self.path.is_file():
            best = load_checkpoint(self.path, mmap=True)
            _check_same_run(run, best, self.path)
            if int(best["epoch"]) == kept:
                self.epoch = self.written = kept
                return
        weights = state.get("kept_model") if state.get("kept_epoch") == kept else None
        if weights is None and kept != history.epochs_done:
            print(wrap(f"! {self.path} does not hold epoch {kept}, the best on val {KEEP_METRIC} in {last}; its "
                       f"weights are lost, so the kept epoch is chosen from epoch {history.epochs_done} on."))
            history.keep_from = history.epochs_done
            kept = history.epochs_done
        save_checkpoint(self.path, _best_state(run, kept, weights))  # None: the model's, last.pt's own
        self.epoch = self.written = kept

    def hold(self, run: TrainRun, history: History, at_last: bool) -> None:
        """Put the kept epoch's weights in the model and hand its Retrieval to the history. ``at_last``:
        the model holds the last completed epoch's weights already (training ended, or Ctrl-C restored
        last.pt). The weights loaded are checked to be the kept epoch's."""
        kept = history.kept_epoch
        history.kept_retrieval = self.retrieval if kept is not None and kept == self.epoch else None
        if kept is None or (kept == history.epochs_done and at_last):
            return
        state = self.state
        if state is None or int(state["epoch"]) != kept:
            state = load_checkpoint(self.path) if self.path is not None and self.path.is_file() else None
        if state is None or int(state["epoch"]) != kept:
            raise CheckpointError(f"the weights of the kept epoch {kept} are not in "
                                  f"{self.path or 'memory'}: train again with resume=True to mend it")
        _load_weights(run.model, state, self.path or Path("the kept weights in memory"))


# --------------------------------------------------------------------------- train_model
def train_model(model: nn.Module, cfg: TrainConfig, train_set: Any, val_set: Any,
                val_idloss: Any = None, checkpoint_dir: str | Path | None = None,
                resume: bool = False, progress: bool = True, sync: CheckpointSync | None = None,
                after_epoch: Callable[[nn.Module, History], None] | None = None) -> History:
    """Train ``model`` with ``cfg``'s recipe, validating after every epoch, until its val curve stops
    gaining or its step ceiling (``cfg.epochs`` epochs) is reached; the model ends holding the kept
    epoch (the first with the best val mAP: ``History.kept_epoch``).

    train_set: IDLossDataset ("id", "strong") or TripletDataset ("triplet"); batches index
    its tensor cache directly, in an order drawn from a generator seeded with cfg.seed.
    val_set: RetrievalDataset (val) → Rank-1/5/10 (val gt) and mAP (query id = its gt
    gallery index, gallery id = position) per epoch; None skips validation (then the last
    epoch is kept and the run goes to its ceiling).

    How long (``cfg.schedule == "curve"``, the presets'): the rule of reid/schedule.py on the val
    mAP curve lowers the rate when it levels and stops the run when it levels at the lowest rate
    (``History.stop_reason``); ``"cosine"`` runs all ``cfg.epochs`` under a cosine decay.

    Validation loss: val identities are not training identities, so the classifier's CE
    cannot be computed on them. Instead, once and with a fixed seed (VAL_TRIPLET_SEED), one
    triplet per image of ``val_idloss`` (IDLossDataset of val_idloss.csv) is drawn: the
    image as anchor, a random same-id positive, a random other-id negative. Each epoch the
    val loss is TripletMarginLoss(margin=HANDOUT_MARGIN) over those triplets on the model's
    feature (forward's first output) in eval mode: one definition for every recipe.

    checkpoint_dir: ``last.pt`` (model, optimiser, scaler, history, cfg, epoch, RNG states and the
    kept epoch's weights) is replaced atomically at most every ``cfg.checkpoint_every_s`` seconds,
    at the end of training, on Ctrl-C and on an error, each time holding the last completed epoch
    (a host copy is taken after every epoch); ``best.pt`` (the kept weights) follows it. resume=True
    continues from ``last.pt``; a complete (or stopped) run trains no further. Without a folder the
    kept weights wait in memory. ``sync`` (optional) copies the folder elsewhere (see
    :class:`CheckpointSync`). Ctrl-C returns the history of the completed epochs with
    interrupted=True (the model holds the kept epoch so far). A NaN/inf loss raises
    FloatingPointError naming the epoch, iteration and precision. ``progress``: one line per epoch
    (:func:`epoch_line`), the ceiling's minutes after the first epoch, why training stopped, and,
    outside a notebook, a bar over each epoch's batches, on stdout. ``after_epoch(model, history)``
    (optional; benchmarks score the test split with it) runs after each epoch's validation, with the
    model holding that epoch's weights; it must not change them.
    """
    seed_everything(cfg.seed)
    run = build_run(model, cfg, train_set)
    reset_peak_memory(run.device)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    kept = _Kept(folder / BEST_NAME if folder is not None else None)
    history, ours = _resume(run, folder, kept, resume, sync)
    val_triplets = None
    if val_idloss is not None:
        val_triplets = random_triplets(val_idloss.ids.cpu(), torch.Generator().manual_seed(VAL_TRIPLET_SEED))
    start = history.epochs_done
    loop = _Loop(run, folder, kept, sync, progress, history, after_epoch)
    restored = True  # does the model hold the last completed epoch's weights?
    try:
        try:
            for epoch in range(start, cfg.epochs):
                if history.stop_reason is not None:
                    break
                if cfg.time_budget_s is not None and history.elapsed_seconds and \
                        history.elapsed_seconds[-1] >= cfg.time_budget_s:
                    print(f"Time budget of {cfg.time_budget_s:.0f} s reached after epoch {epoch}.")
                    break
                loop.epoch = epoch
                restored = False
                loop.one_epoch(val_set, val_idloss, val_triplets)
                restored = True
            ours = loop.save() or ours  # the end of training: last.pt and best.pt hold it
        except KeyboardInterrupt:
            try:
                ours = loop.save() or ours  # the last completed epoch, if it was not written yet
            except KeyboardInterrupt:  # a Ctrl-C during that write: the files on disk stay as they were
                loop.pending = None
            ckpt = folder / CHECKPOINT_NAME if folder is not None and ours else None
            history = _on_interrupt(run, history, ckpt, loop.epoch if loop.epoch is not None else start)
            restored = ckpt is not None
        except BaseException:
            with contextlib.suppress(Exception):  # an error (a NaN loss...): keep what completed, if we can
                loop.save()
            raise
    finally:  # whatever stopped training, Drive gets what there is
        if folder is not None and sync is not None and loop.history.epochs_done > start:
            sync.push(folder, final=True)
    kept.hold(run, history, at_last=restored)
    if (progress and history.epochs_done > start and cfg.schedule == "curve" and val_set is not None
            and not history.interrupted):
        rule = cfg.curve_rule()
        print(wrap(f"Stopped: {stop_words(history.progress(rule), rule, history.epochs_done, cfg.epochs)}."))
    if progress and history.epochs_done > start:
        skipped = skipped_epoch_lines(history, cfg.epochs, named_epochs(history))
        if skipped:
            print(skipped)
        peak, what = peak_memory(run.device)
        print(f"Peak memory: {peak / 1e9:.1f} GB ({what}).")
    if history.kept_epoch is not None and history.kept_epoch != history.epochs_done:
        print(f"Kept epoch {history.kept_epoch} of {history.epochs_done} (best val {KEEP_METRIC} "
              f"{history.at_kept(KEEP_METRIC):.3f}): the model now holds its weights.")
    return history


def _resume(run: TrainRun, folder: Path | None, kept: _Kept, resume: bool,
            sync: CheckpointSync | None) -> tuple[History, bool]:
    """(the history to continue, whether the folder's last.pt is this run's): a fresh History, or, with
    ``resume``, the one in last.pt (after ``sync`` brought a newer copy down) with its weights, optimiser,
    schedule and RNG states restored and best.pt checked."""
    ckpt = folder / CHECKPOINT_NAME if folder is not None else None
    if resume and folder is not None and sync is not None:
        sync.pull(folder)
    if resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        history = _restore(run, state, ckpt)
        history.interrupted = False
        kept.recover(run, history, ckpt, state)
        if history.stop_reason is not None:
            print(wrap(f"Resuming from {ckpt}: complete, the val curve stopped it after {history.epochs_done} "
                       f"epochs ({history.stop_reason})."))
        else:
            print(wrap(f"Resuming from {ckpt}: {history.epochs_done} of at most {run.cfg.epochs} epochs done."))
        return history, True
    if resume:
        print(wrap(f"No checkpoint at {ckpt}; training from the start."))
    return History(recipe=run.cfg.recipe), False


@dataclass
class _Loop:
    """One epoch of train_model: the steps, the validation, the rate and stop rule, the kept epoch, the
    host copy of the epoch and, when due, last.pt then best.pt and the Drive copy; the epoch's line."""

    run: TrainRun
    folder: Path | None
    kept: _Kept
    sync: CheckpointSync | None
    progress: bool
    history: History
    after_epoch: Callable[[nn.Module, History], None] | None = None
    epoch: int | None = None
    t_start: float = field(default_factory=lambda: time.perf_counter())
    offset: float | None = None
    pending: dict[str, Any] | None = None  # the last completed epoch's checkpoint, not yet on disk
    last_save: float = field(default_factory=lambda: time.perf_counter())

    def one_epoch(self, val_set: Any, val_idloss: Any, val_triplets: Any) -> None:
        """Train and validate epoch ``self.epoch``."""
        run, epoch, history = self.run, self.epoch, self.history
        if self.offset is None:  # wall time before this process: a resumed run's clock goes on
            self.offset = history.elapsed_seconds[-1] if history.elapsed_seconds else 0.0
        t0 = time.perf_counter()
        steps = train_epoch(run, epoch, self.progress)
        train_seconds = time.perf_counter() - t0
        metrics = evaluate_val(run, val_set, val_idloss, val_triplets) if val_set is not None else {}
        retrieval = metrics.pop("retrieval", None)
        _append_epoch(history, steps, metrics, train_seconds, self.offset + time.perf_counter() - self.t_start)
        stopped = self._follow_curve(val_set is not None)
        if self.after_epoch is not None:
            self.after_epoch(run.model, history)
        keep = history.kept_epoch == epoch + 1
        # a host copy of the epoch's weights, as a Ctrl-C, a save or the kept epoch will want them
        weights = _host_copy(run.model.state_dict()) if self.folder is not None or keep else {}
        if keep:
            self.kept.update(run, epoch + 1, retrieval, weights)
        if self.folder is not None:
            self.pending = _checkpoint_state(run, history, epoch + 1, self.kept, weights)
            last = stopped or epoch + 1 >= run.cfg.epochs
            if last or time.perf_counter() - self.last_save >= run.cfg.checkpoint_every_s:
                self.save()
        if self.progress:
            self._print_lines(epoch + 1)

    def _follow_curve(self, validated: bool) -> bool:
        """Apply the curve rule after this epoch: set the next epoch's rate level, or stop the run
        (``History.stop_reason``). Returns whether it stopped."""
        run, history = self.run, self.history
        if run.cfg.schedule != "curve" or not validated:
            return False
        rule = run.cfg.curve_rule()
        p = history.progress(rule)
        _set_level(run, p.level)
        _apply_schedule(run)  # the next epoch's first step trains at the new rate
        if p.stopped is not None:
            history.stop_reason = stop_words(p, rule, history.epochs_done, run.cfg.epochs)
            return True
        return False

    def save(self) -> bool:
        """Write the pending epoch: last.pt (with the kept weights), then best.pt, then the Drive copy.
        Returns whether last.pt was written (now or before) by this run."""
        if self.folder is None:
            return False
        if self.pending is None:
            return self.history.epochs_done > 0 and (self.folder / CHECKPOINT_NAME).is_file()
        save_checkpoint(self.folder / CHECKPOINT_NAME, self.pending)  # last before best: see _Kept.recover
        self.kept.write()
        self.pending = None
        self.last_save = time.perf_counter()
        if self.history.elapsed_seconds:
            self.history.elapsed_seconds[-1] = self.offset + self.last_save - self.t_start
        if self.sync is not None:
            self.sync.push(self.folder)
        return True

    def _print_lines(self, epoch: int) -> None:
        run, history = self.run, self.history
        epochs = run.cfg.epochs
        if epoch == history.epochs_done and shown_epoch(epoch, epochs, stop=history.stop_reason is not None):
            if epoch == 1 and epochs > EPOCH_LINES:
                print(f"(a line every {epoch_line_step(epochs)} epochs, the last, and any epoch a later cell names; "
                      "the curves and the History hold every epoch)", flush=True)
            print(epoch_line(history, epochs), flush=True)
        if epoch == 1 and epochs > 1:
            print(wrap(ceiling_line(run, history)), flush=True)


def ceiling_line(run: TrainRun, history: History) -> str:
    """After the first epoch: the step ceiling and what it takes on this machine at that epoch's pace."""
    n = run.iters_per_epoch()
    per_epoch = history.elapsed_seconds[0] if history.elapsed_seconds else 0.0
    minutes = per_epoch * run.cfg.epochs / 60
    return (f"Ceiling: {run.cfg.epochs * n:,} steps ({run.cfg.epochs} epochs of {n}); at epoch 1's pace "
            f"({per_epoch:.0f} s with validation) at most {minutes:.1f} min here"
            + ("; the val curve may stop it sooner." if run.cfg.schedule == "curve" else "."))


EPOCH_LINES = 18
"""At most about this many per-epoch lines are printed (a GPU budget runs 35–140 epochs)."""


def shown_epoch(epoch: int, epochs: int, most: int = EPOCH_LINES, stop: bool = False) -> bool:
    """Whether epoch ``epoch`` (1-based) of at most ``epochs`` gets its line: every epoch of a run of at
    most ``most``; else the first, every k-th (k = ⌈epochs / most⌉), the last, and the one a stop ended
    the run at (``stop``), so a log stays on a screen (the curves and the History hold every epoch)."""
    if epochs <= most or stop:
        return True
    return epoch == 1 or epoch == epochs or epoch % epoch_line_step(epochs, most) == 0


def epoch_line_step(epochs: int, most: int = EPOCH_LINES) -> int:
    """Every how many epochs a line is printed when a run has more than ``most``: ⌈epochs / most⌉."""
    return -(-epochs // most)


def epoch_line(history: History, epochs: int, epoch: int | None = None) -> str:
    """The line printed after each epoch (``epoch``, 1-based; default the last), under 100 characters:
    ``epoch 3/14: train loss 2.345, val loss 0.456, Rank-1/5/10 0.321/0.5/0.6, mAP …, 41 s`` (no progress-bar
    fragments)."""
    e = history.epochs_done if epoch is None else epoch
    at = lambda key: getattr(history, key)[e - 1]  # noqa: E731
    parts = [f"epoch {e}/{epochs}: train loss {at('epoch_train_loss'):.3f}"]
    if at("val_loss") is not None:
        parts.append(f"val loss {at('val_loss'):.3f}")
    if at("rank1") is not None:
        parts.append(f"Rank-1/5/10 {at('rank1'):.3f}/{at('rank5'):.3f}/{at('rank10'):.3f}")
    if at("mAP") is not None:
        parts.append(f"mAP {at('mAP'):.3f}")
    parts.append(f"{history.epoch_seconds[e - 1]:.0f} s")
    return ", ".join(parts)


def named_epochs(history: History) -> list[int]:
    """The epochs the notebook's later lines name (:func:`reid.report.describe_history`): the kept one, the
    best val Rank-1, the lowest validation loss."""
    named = [history.kept_epoch]
    r1 = [v if v is not None else -1 for v in history.rank1]
    if r1:
        named.append(max(range(len(r1)), key=lambda i: (r1[i], -i)) + 1)
    vl = [(v, i) for i, v in enumerate(history.val_loss) if v is not None]
    if vl:
        named.append(min(vl)[1] + 1)
    return [e for e in dict.fromkeys(named) if e]


def skipped_epoch_lines(history: History, epochs: int, named: list[int]) -> str:
    """The lines of the ``named`` epochs that a thinned log (:func:`shown_epoch`) did not print, so every
    epoch a later line names can be read in the log; "" when none was skipped."""
    missing = sorted(e for e in set(named) if 0 < e <= history.epochs_done and not shown_epoch(e, epochs))
    if not missing:
        return ""
    return "\n".join(["Epochs named below that the thinned log skipped:",
                      *(epoch_line(history, epochs, e) for e in missing)])


def _append_epoch(history: History, steps: EpochSteps, metrics: dict[str, float | None],
                  train_seconds: float, elapsed: float) -> None:
    history.iter_loss += steps.losses
    history.epoch_train_loss.append(sum(steps.losses) / max(1, len(steps.losses)))
    for key in ("val_loss", "rank1", "rank5", "rank10", "mAP", "match_rank"):
        getattr(history, key).append(metrics.get(key))
    history.active_triplets.append(steps.active_share)
    history.lr.append(steps.lr)
    history.epoch_seconds.append(train_seconds)
    history.elapsed_seconds.append(elapsed)


def _on_interrupt(run: TrainRun, history: History, ckpt: Path | None, epoch: int) -> History:
    """After Ctrl-C: model and history go back to this run's checkpoint, if it has one (the caller
    then loads the kept epoch)."""
    if ckpt is not None:
        state = load_checkpoint(ckpt)
        run.model.load_state_dict(state["model"])
        history = History.from_dict(state["history"])
        where = (f"The history is back at the end of epoch {history.epochs_done} ({ckpt}); to "
                 f"continue, call train_model(..., checkpoint_dir={str(ckpt.parent)!r}, resume=True).")
    else:
        where = "No checkpoint of this run was written."
    history.interrupted = True
    print(wrap(f"Interrupted during epoch {epoch + 1}; the history covers {history.epochs_done} "
               f"completed epoch(s). {where}"))
    return history
