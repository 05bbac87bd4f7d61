"""The rule that lowers the rate and stops a run (reid/schedule.py), on fixed curves worked by hand."""
from __future__ import annotations

import math

import pytest

from reid.schedule import CurveRule, CurveSchedule, follow_curve, stop_words, trailing_mean

RULE = CurveRule(patience=3, min_delta=0.01, smooth=1, drops=1)


def test_trailing_mean_by_hand():
    assert trailing_mean([3, 6, 9, 0], 3) == [3, 4.5, 6, 5]
    assert trailing_mean([1, 2], 1) == [1, 2]


def test_a_rising_curve_never_drops_or_stops():
    p = follow_curve([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], RULE)
    assert (p.level, p.drops_at, p.stopped, p.since_gain, p.best_epoch) == (0, [], None, 0, 6)
    assert p.state(RULE) == "rising"


def test_a_levelled_curve_drops_then_stops():
    # gains at epochs 1-3; 0.305 is within min_delta of 0.3: no gain at 4, 5, 6 → drop after 6; 7, 8, 9 → stop
    curve = [0.1, 0.2, 0.3, 0.305, 0.3, 0.302, 0.30, 0.301, 0.30, 0.5]
    p = follow_curve(curve, RULE)
    assert p.drops_at == [6] and p.level == 1 and p.stopped == 9 and p.best_epoch == 3
    assert "at epoch 9" in stop_words(p, RULE, 9, 20)


def test_a_gain_after_a_drop_resets_the_wait():
    curve = [0.3, 0.3, 0.3, 0.3, 0.4, 0.4, 0.4, 0.4]  # drop after 4; the rise at 5 is a gain; 6-8 wait
    p = follow_curve(curve, RULE)
    assert p.drops_at == [4] and p.stopped == 8 and p.best_epoch == 5


def test_a_peaked_curve_is_told_from_a_levelled_one():
    peaked = follow_curve([0.2, 0.5, 0.45, 0.4, 0.38], RULE)
    assert peaked.state(RULE) == "peaked" and peaked.best_epoch == 2
    level = follow_curve([0.2, 0.5, 0.5, 0.5, 0.49], RULE)
    assert level.state(RULE) == "levelled"


def test_smoothing_keeps_a_noise_spike_from_setting_the_bar():
    """One epoch 0.06 above its neighbours (a 49-person gallery moves that much): raw, nothing after it
    gains and the run would drop and stop; on the 3-epoch mean the curve still rises through it."""
    noisy = [0.30, 0.32, 0.40, 0.33, 0.35, 0.36, 0.37, 0.38, 0.39]
    raw = follow_curve(noisy, CurveRule(patience=3, min_delta=0.005, smooth=1, drops=0))
    smooth = follow_curve(noisy, CurveRule(patience=3, min_delta=0.005, smooth=3, drops=0))
    assert raw.stopped == 6
    assert smooth.stopped is None and smooth.state(CurveRule(patience=3, smooth=3)) == "rising"


def test_epochs_without_validation_count_as_no_gain():
    p = follow_curve([0.5, None, None, None], RULE)
    assert p.best_epoch == 1 and p.drops_at == [4]


def test_too_short_a_curve():
    assert follow_curve([0.4], RULE).state(RULE) == "too short"


@pytest.mark.parametrize("done, ceiling, expect", [
    (10, 10, "step ceiling reached while still rising (epoch 10 of 10)"),
    (4, 10, "not finished: 4 of at most 10 epochs")])
def test_stop_words_at_the_ceiling(done, ceiling, expect):
    p = follow_curve([0.1 * i for i in range(1, done + 1)], RULE)
    assert stop_words(p, RULE, done, ceiling) == expect


def test_stop_words_at_the_ceiling_after_levelling():
    p = follow_curve([0.5, 0.5, 0.5, 0.5, 0.5], CurveRule(patience=3, drops=2, smooth=1))
    assert stop_words(p, CurveRule(patience=3, drops=2, smooth=1), 5, 5) == \
        "step ceiling reached after the curve levelled (epoch 5 of 5)"


def test_the_schedule_warms_up_drops_and_anneals_at_the_ceiling():
    s = CurveSchedule(warmup_iters=4, ceiling_iters=100, rule=CurveRule(factor=0.1), cooldown=0.2, min_factor=0.01)
    assert [s(i) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert s(50) == 1.0 and s(79) == 1.0           # constant until the last 20 % of the ceiling
    assert s(90) == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s(100) == pytest.approx(0.01)
    s.level = 1
    assert s(50) == pytest.approx(0.1) and s(99) < 0.1   # a drop; the anneal still ends lower
    s.level = 2
    assert s(50) == pytest.approx(0.01)
