"""Recorded training runs: the presets by recipe name, typed ``FIELD=VALUE`` settings, and what a
recorded run changed from today's preset.

``bench/time_to_accuracy.py`` reads ``--set FIELD=VALUE`` with :func:`parse_setting` and writes
each run's settings to a JSON; ``bench/run_all.py`` reports them with :func:`settings_changed`.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from reid.config import RANDOM_START, TrainConfig, unused_fields

if TYPE_CHECKING:
    import pandas as pd

PRESETS: dict[str, Callable[..., TrainConfig]] = {
    "id": TrainConfig.handout_id, "triplet": TrainConfig.handout_triplet, "strong": TrainConfig.strong}
"""Recipe name → the TrainConfig constructor of its preset."""
# Settings that say how a run was run, not what it trained; amp is reported as its own column
# (the precision the run trained in).
RUN_ONLY = {"epochs", "time_budget_s", "seed", "device", "eval_batch_size", "max_iters_per_epoch", "amp",
            "start", "start_file", "checkpoint_every_s",
            # how long a run went and how its rate fell: its epochs are a column of their own; runs
            # recorded before curve-following schedules read as cosine ones (TrainConfig.from_dict)
            "schedule", "patience", "min_delta", "lr_drops", "cooldown"}  # the start is a column of its own


class SettingError(ValueError):
    """A ``FIELD=VALUE`` text that names no TrainConfig field or holds a value of the wrong type."""


def parse_setting(text: str) -> tuple[str, object]:
    """"lr=1e-3" → ("lr", 0.001): the value typed after the TrainConfig field's annotation.

    "none" gives None for fields that may be None; bools take true/false/1/0.
    Raises SettingError naming the fields, or the field's type and the value given.
    """
    name, sep, value = text.partition("=")
    fields = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
    if not sep or name not in fields:
        raise SettingError(f"--set expects FIELD=VALUE, FIELD one of {', '.join(fields)}; got {text!r}")
    kind, low = fields[name], value.strip().lower()
    if low == "none" and "None" in kind:
        return name, None
    if "tuple" in kind:  # an (H, W) size written HxW
        h, sep, w = low.partition("x")
        if not (sep and h.isdigit() and w.isdigit()):
            raise SettingError(f"--set {name}= expects a size HxW such as 128x64, got {value!r}")
        return name, (int(h), int(w))
    try:
        if "bool" in kind:
            if low not in ("true", "false", "1", "0"):
                raise ValueError
            return name, low in ("true", "1")
        if "int" in kind:
            return name, int(value)
        if "float" in kind:
            return name, float(value)
    except ValueError:
        raise SettingError(f"--set {name}= expects a value of type {kind}, got {value!r}") from None
    return name, value


def settings_changed(cfg: dict) -> str:
    """The settings of a recorded run (``TrainConfig.to_dict()``) that differ from today's preset of
    its recipe, as "name=value, …", or "preset".

    A setting the code did not have yet when the run was made counts as its TrainConfig default
    (what the code did before the setting existed: listed triplets, no test-time flip, …); a
    setting the code no longer has is always listed. ``input_size`` reads as "HxW" (unrecorded:
    the handout's 128x128)."""
    preset = PRESETS[cfg["recipe"]](epochs=cfg["epochs"], start=cfg.get("start", RANDOM_START)).to_dict()
    known = TrainConfig().to_dict()
    full = {**known, **cfg}
    for d in (preset, full):  # runs before input_size was recorded (None) trained at 128×128
        d["input_size"] = "x".join(map(str, d.get("input_size") or (128, 128)))
    skip = RUN_ONLY | unused_fields(full["recipe"], full.get("mining", "none"))
    diff = [f"{k}={v}" for k, v in full.items() if k not in skip and k in preset and preset[k] != v]
    diff += [f"{k}={v}" for k, v in cfg.items() if k not in known]  # a setting no longer in the code
    return ", ".join(diff) if diff else "preset"


# What each addition of the stronger recipes measured: pairs of recorded runs on the Market-1501
# layout (results/; bench/BENCHMARKS.md section 3, section 5 for the input shape) that differ in
# that addition only (and, for the input shape, in the epochs that fit the same wall time), from
# random weights on the 2-core CPU. (addition, used by, run with it, run without it, epoch compared:
# None = each run's last epoch; "time" = each run's last epoch, the two schedules planned to take
# the same wall time). A run may be a tuple of files, the same run with different training seeds:
# its Rank-1 is then their mean.


def shape_run_name(layout: str, shape: str, seed: int = 0) -> str:
    """File name of an input-shape run in results/shape (bench/BENCHMARKS.md section 5): training
    seed 0 is ``<layout>_<shape>.json``, seed S ``<layout>_<shape>_seed<S>.json``."""
    return f"{layout}_{shape}.json" if seed == 0 else f"{layout}_{shape}_seed{seed}.json"


def shape_run_files(results_dir: str | Path, layout: str, shape: str) -> dict[int, Path]:
    """The recorded input-shape runs of one layout and shape in ``results_dir``, as {training seed:
    file}, in seed order (names as :func:`shape_run_name` makes them; nothing else matches)."""
    pattern = re.compile(re.escape(f"{layout}_{shape}") + r"(?:_seed([1-9][0-9]*))?\.json")
    found = {}
    for path in Path(results_dir).glob(f"{layout}_{shape}*.json"):
        match = pattern.fullmatch(path.name)
        if match:
            found[int(match.group(1) or 0)] = path
    return dict(sorted(found.items()))


ABLATIONS = (
    ("batch-all triplets vs the listed ones", "not used",
     "explore/triplet_4ep_batch_all_p8k4.json", "explore/triplet_3ep_b16_bf16.json", 3),
    ("shifts ≤ 8 px (ID + flips + smoothing)", "ID model, stronger recipe",
     "market_tta_id.json", "market_tta_id_24ep_noshift.json", None),
    ("shifts ≤ 8 px (stronger recipe)", "stronger recipe",
     "market_tta_strong_26ep_128x128.json", "market_tta_strong_26ep_noshift.json", None),
    ("flips + label smoothing (ID, float32)", "flips: all; smoothing: stronger",
     "market_tta_id_12ep_float32.json", "market_tta_id_12ep.json", None),
    ("cosine vs Euclidean ranking (stronger)", "stronger recipe",
     "market_tta_strong_26ep_noshift.json", "market_tta_strong_26ep_euclidean.json", None),
    ("random erasing (stronger recipe)", "not used",
     "market_tta_strong_34ep_erase.json", "market_tta_strong_26ep_noshift.json", None),
    ("the person at 128×64 vs padded 128×128", "stronger recipe (level; half the FLOPs)",
     tuple("shape/" + shape_run_name("market_s0", "128x64", seed) for seed in (0, 1, 2)),
     tuple("shape/" + shape_run_name("market_s0", "128x128", seed) for seed in (0, 1, 2)), "time"),
)
"""(addition — at most 40 characters, the table's row label —, where it is used, run with it, run without
it, where they are compared: an epoch number, None = each run's last epoch, "time" = each run's last
epoch, the two schedules planned to take the same wall time). The stronger recipe's rows ran without
shifts where the label says "(stronger)" after shifts; bench/BENCHMARKS.md section 3 has every run."""


def _files(run: str | tuple[str, ...]) -> tuple[str, ...]:
    return (run,) if isinstance(run, str) else tuple(run)


def _shown(run: str | tuple[str, ...]) -> str:
    """A run as the table names it: its file, or its first file and how many more seeds."""
    first, *more = _files(run)
    return first if not more else f"{first} and {len(more)} more training seed{'s' if len(more) > 1 else ''}"


def ablation_table(results_dir: str | Path) -> "pd.DataFrame":
    """One row per entry of ABLATIONS: val Rank-1 with and without the addition, read from the
    recorded runs' JSON (``rank1`` per epoch) in ``results_dir`` (a run of several training seeds:
    the mean over them, and the minutes their mean); a missing file is named."""
    import pandas as pd

    rows = []
    for addition, used, with_run, without_run, epoch in ABLATIONS:
        if not (epoch is None or epoch == "time" or isinstance(epoch, int)):
            raise ValueError(f"ABLATIONS entry '{addition}': compare at an epoch number, None or 'time', not {epoch!r}")
        seeds = len(_files(with_run))
        if len(_files(without_run)) != seeds:
            raise ValueError(f"ABLATIONS entry '{addition}': {seeds} training seeds with it, "
                             f"{len(_files(without_run))} without; compare the same seeds")
        values, lengths, minutes = [], [], []
        for run_files in (_files(with_run), _files(without_run)):
            r1s, mins, epochs = [], [], set()
            for name in run_files:
                path = Path(results_dir) / name
                if not path.is_file():
                    raise FileNotFoundError(f"{path}: a recorded run of the ablation '{addition}' is missing")
                run = json.loads(path.read_text())
                r1 = run["rank1"]
                epochs.add(len(r1))
                if isinstance(epoch, int) and epoch > len(r1):
                    raise ValueError(f"{path}: has {len(r1)} epochs; the ablation '{addition}' compares epoch {epoch}")
                r1s.append(r1[epoch - 1] if isinstance(epoch, int) else r1[-1])
                mins.append(run["elapsed_seconds"][-1] / 60)
            if len(epochs) > 1:
                raise ValueError(f"ABLATIONS entry '{addition}': the seeds of {run_files[0]} ran "
                                 f"{sorted(epochs)} epochs; a mean needs one schedule")
            values.append(sum(r1s) / len(r1s))
            lengths.append(epochs.pop())
            minutes.append(sum(mins) / len(mins))
        if epoch == "time":
            at = f"equal time ({lengths[0]} vs {lengths[1]} epochs)"
        elif epoch is not None:
            at = f"epoch {epoch}"
        else:
            at = "last epoch" if lengths[0] == lengths[1] else f"last epochs ({lengths[0]} vs {lengths[1]})"
        if seeds > 1:
            at += f", {seeds} seeds"
        shown = [_shown(r) for r in (with_run, without_run)]
        rows.append({"addition": addition, "used in": used, "Rank-1 with": values[0], "Rank-1 without": values[1],
                     "difference": round(values[0], 3) - round(values[1], 3), "compared at": at,
                     "minutes": f"{minutes[0]:.1f} / {minutes[1]:.1f}", "runs": f"{shown[0]} / {shown[1]}"})
    return pd.DataFrame(rows).set_index("addition").round(3)


START_RUNS = (("ID loss (handout)", "pretrained/id_scratch.json", "pretrained/id_standin_warmup1.json"),
              ("triplet loss (handout)", "pretrained/triplet_scratch.json", "pretrained/triplet_standin_warmup1.json"),
              ("stronger recipe (beyond)", "pretrained/strong_scratch.json", "pretrained/strong_standin_chosen.json"))
"""Per model, the recorded runs of "what the weights bought" (bench/BENCHMARKS.md section 7): from random
weights and from the stand-in weights file, each with the settings and budget of its start (the handout
models' chosen pretrained runs are their 1-epoch warm-up runs: their budgets stayed at 14 epochs)."""


def _kept_index(run: dict) -> int:
    maps = run["mAP"]
    return max(range(len(maps)), key=lambda i: (maps[i], -i))


def start_table(results_dir: str | Path) -> "pd.DataFrame":
    """Beyond the handout: per model, val and test Rank-1 of the recorded random-start and stand-in-start
    runs (START_RUNS; each at its kept epoch, test scored with the layout's test_gt.csv); a missing file
    is named."""
    import pandas as pd

    rows = {}
    for model, random_run, standin_run in START_RUNS:
        got = []
        for name in (random_run, standin_run):
            path = Path(results_dir) / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: a recorded run of the start comparison is missing")
            got.append(json.loads(path.read_text()))
        (r, s), (kr, ks) = got, (_kept_index(got[0]), _kept_index(got[1]))
        rows[model] = {"val Rank-1, random start": r["rank1"][kr], "val Rank-1, stand-in start": s["rank1"][ks],
                       "test Rank-1, random start": r["test"]["rank1"], "test Rank-1, stand-in start": s["test"]["rank1"],
                       "epochs kept / run": f"{kr + 1}/{len(r['rank1'])} · {ks + 1}/{len(s['rank1'])}"}
    return pd.DataFrame.from_dict(rows, orient="index").round(3)
