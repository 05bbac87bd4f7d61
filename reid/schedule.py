"""How long a model trains, and at what rate: its validation curve decides, under a step ceiling.

One definition serves the training loop (when to lower the rate, when to stop), the notebook's
stop line and the Q8 verdict (:func:`follow_curve`), so what the notebook says of a curve is what
the loop did with it.

The rule (:class:`CurveRule`), read after every epoch on the val mAP curve:

* the curve is smoothed by a trailing mean over ``smooth`` epochs (one epoch of a 49-person
  gallery moves by ±0.03; the mean of three moves about half as much);
* a *gain* is a smoothed value more than ``min_delta`` above the best smoothed value so far;
* after ``patience`` epochs without a gain the rate drops by ``factor`` (×0.1), at most ``drops``
  times; at the lowest rate, ``patience`` more epochs without a gain stop the training
  ("levelled");
* the *step ceiling* (``TrainConfig.epochs`` epochs of the run's steps; ``reid/budget.py`` sets
  it per device class) ends it otherwise, "while still rising" when the curve gained within the
  last ``patience`` epochs. So that a run the ceiling ends has annealed, the rate also follows a
  cosine down to ``min_lr_factor`` over the ceiling's last ``cooldown`` share of steps
  (:class:`CurveSchedule`); nothing else needs the run's length in advance.

A run with no validation (no val set) trains to its ceiling.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

__all__ = ["CurveRule", "Progress", "follow_curve", "CurveSchedule", "stop_words", "trailing_mean"]


@dataclass(frozen=True)
class CurveRule:
    """The stopping and rate-drop rule (see the module docstring)."""

    patience: int = 4
    min_delta: float = 0.005
    smooth: int = 3
    drops: int = 2
    factor: float = 0.1

    def describe(self) -> str:
        return (f"×{self.factor:g} when val mAP (mean of {self.smooth} epochs) gains ≤ {self.min_delta:g} for "
                f"{_epochs(self.patience)}, stop at the {_ordinal(self.drops + 1)} time")


def _epochs(n: int) -> str:
    return f"{n} epoch" + ("" if n == 1 else "s")


def _ordinal(n: int) -> str:
    return {1: "first", 2: "second", 3: "third", 4: "fourth"}.get(n, f"{n}th")


def trailing_mean(values: Sequence[float], window: int) -> list[float]:
    """Each value averaged with the ``window - 1`` before it (fewer at the start)."""
    return [sum(values[max(0, i - window + 1): i + 1]) / (i + 1 - max(0, i - window + 1))
            for i in range(len(values))]


@dataclass
class Progress:
    """What :func:`follow_curve` read from a curve, after its last epoch.

    level: rate drops so far (the next epoch trains at ``factor ** level``); drops_at: the epochs
    after which the rate dropped; since_gain: epochs since the last gain (0: the last epoch gained);
    stopped: the epoch after which the rule stopped the run (None: go on); best_epoch: the epoch of
    the best smoothed value; smoothed: the smoothed curve.
    """

    level: int = 0
    drops_at: list[int] = field(default_factory=list)
    since_gain: int = 0
    stopped: int | None = None
    best_epoch: int | None = None
    smoothed: list[float] = field(default_factory=list)

    def state(self, rule: CurveRule) -> str:
        """``"rising"`` (a gain within the last ``patience`` epochs), ``"peaked"`` (no gain for
        ``patience`` epochs and the smoothed curve now more than 4 × ``min_delta`` below its best) or
        ``"levelled"``; ``"too short"`` before two epochs."""
        if len(self.smoothed) < 2:
            return "too short"
        if self.since_gain < rule.patience:
            return "rising"
        best = self.smoothed[self.best_epoch - 1]
        return "peaked" if best - self.smoothed[-1] > 4 * rule.min_delta else "levelled"


def follow_curve(values: Sequence[float | None], rule: CurveRule) -> Progress:
    """Apply ``rule`` epoch by epoch to a val curve (higher is better; None where an epoch had no
    validation, which then counts as no gain). Deterministic in the curve alone, so a resumed run
    recomputes where it stands from its History."""
    p = Progress()
    best, waiting = -math.inf, 0
    clean = [v if v is not None else -math.inf for v in values]
    p.smoothed = trailing_mean([v if v != -math.inf else 0.0 for v in clean], rule.smooth)
    for epoch, v in enumerate(p.smoothed, start=1):
        if clean[epoch - 1] != -math.inf and v > best + rule.min_delta:
            best, p.best_epoch, p.since_gain, waiting = v, epoch, 0, 0
        else:
            p.since_gain += 1
            waiting += 1
        if waiting >= rule.patience:
            if p.level >= rule.drops:
                p.stopped = epoch
                break
            p.level += 1
            p.drops_at.append(epoch)
            waiting = 0
    return p


def stop_words(progress: Progress, rule: CurveRule, epochs_done: int, ceiling: int) -> str:
    """Why a run ended, in the notebook's words: "levelled for 4 epochs at the lowest rate, at epoch
    23" or "step ceiling reached while still rising (epoch 45 of 45)"."""
    if progress.stopped is not None:
        return (f"levelled: no gain in val mAP above {rule.min_delta:g} for {_epochs(rule.patience)} at the lowest "
                f"rate, at epoch {progress.stopped}")
    if epochs_done >= ceiling:
        if progress.since_gain == 0:
            how = "while still rising"
        elif progress.state(rule) == "rising":
            how = f"before the curve levelled (its last gain {_epochs(progress.since_gain)} before)"
        else:
            how = "after the curve levelled"
        return f"step ceiling reached {how} (epoch {epochs_done} of {ceiling})"
    return f"not finished: {epochs_done} of at most {ceiling} epochs"


class CurveSchedule:
    """The learning-rate factor per iteration (``LambdaLR``) of a curve-following run: a linear
    warm-up over ``warmup_iters``, then ``factor ** level`` (``level`` is set after each epoch from
    :func:`follow_curve`), and over the ceiling's last ``cooldown`` share of iterations a cosine
    from 1 down to ``min_factor`` (whichever of the two is lower)."""

    def __init__(self, warmup_iters: int, ceiling_iters: int, rule: CurveRule, cooldown: float = 0.2,
                 min_factor: float = 0.01) -> None:
        self.warmup_iters, self.ceiling_iters = warmup_iters, ceiling_iters
        self.factor, self.cooldown, self.min_factor = rule.factor, cooldown, min_factor
        self.level = 0

    def __call__(self, step: int) -> float:
        warm = (step + 1) / self.warmup_iters if step < self.warmup_iters else 1.0
        start = self.ceiling_iters * (1 - self.cooldown)
        cool = 1.0
        if step >= start and self.ceiling_iters > start:
            t = min(1.0, (step - start) / (self.ceiling_iters - start))
            cool = self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * t))
        return warm * min(self.factor ** self.level, cool)
