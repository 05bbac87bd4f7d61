"""`make bench`: run the benchmarks in one process and rewrite bench/BENCHMARKS.md.

1. Training and feature-extraction throughput, end to end against pure compute (bench_train),
   and the stronger recipe at 128×64 against 128×128.
2. Market-sized evaluation against a per-query numpy loop (bench_eval), and k-reciprocal
   re-ranking against the per-probe numpy reference (bench_rerank; the reference needs about
   1.5 minutes and 12 GB at that size).
3. Time to accuracy: read from the JSONs that `python -m bench.time_to_accuracy` writes
   (`results/market_tta_<recipe>.json`, `results/market_tta_*_*.json`, `results/explore/`);
   those runs take up to 20 minutes each, so they are started by hand (the command is in
   the file) and not by `make bench`; `python -m bench.run_all --tta-only` rewrites just
   this section after one.

    python -m bench.run_all                  # everything (make bench)
    python -m bench.run_all --tta-only       # rewrite section 3 of BENCHMARKS.md
    python -m bench.run_all --tta-section [RESULTS_DIR]   # print section 3 made of RESULTS_DIR
    python -m bench.run_all --check          # exit 1 unless BENCHMARKS.md holds sections 3-6 of results/
    python -m bench.run_all --section N [RESULTS_DIR]   # print section N (3-6) made of RESULTS_DIR

4. Training budgets (results/budget/), 5. the stronger recipe's input shape at equal wall time
   (results/shape/), 6. re-ranking on the Market layout (results/rerank_market.json): made of
   recorded runs too, and rewritten with section 3.
"""
from __future__ import annotations

import json
import os
import platform
import random
import sys
import time
from pathlib import Path

import torch

from bench import bench_eval, bench_rerank, bench_train
from reid.report import verdict
from reid.runs import settings_changed, shape_run_files
from reid.train import History

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RECIPES = {"id": "ID-loss recipe", "triplet": "triplet recipe", "strong": "stronger recipe"}  # settings column: what differs from the preset
TARGETS = {"id": 0.45, "triplet": 0.40, "strong": 0.72}


def tta_row(path: Path, shown: str) -> str:
    h = json.loads(path.read_text())
    r1, recipe, elapsed = h["rank1"], h["recipe"], h["elapsed_seconds"]
    best = max(range(len(r1)), key=r1.__getitem__)
    in_time = [v for v, t in zip(r1, elapsed) if t <= 20 * 60]  # epochs that ended within 20 minutes
    settings = settings_changed(h["config"]) if "config" in h else "not recorded"
    # Runs written before the "precision" field: amp=None meant float32 on the CPU then.
    precision = h.get("precision", "bfloat16" if h.get("config", {}).get("amp") else "float32")
    if "note" in h:
        settings += f" ({h['note']})"
    return (f"| {RECIPES[recipe]} (`{shown}`) | {settings} | {precision} | {len(r1)} | {elapsed[-1] / 60:.1f} | "
            f"{sum(h['epoch_seconds']) / 60:.1f} | {', '.join(f'{v:.3f}' for v in r1)} | "
            f"{r1[-1]:.3f} / {h['rank5'][-1]:.3f} / {h['rank10'][-1]:.3f} | {h['mAP'][-1]:.3f} | "
            f"{r1[best]:.3f} (epoch {best + 1}) | {max(in_time) if in_time else float('nan'):.3f} | "
            f"≥ {TARGETS[recipe]:.2f} |")


def tta_section(results: Path = ROOT / "results") -> str:
    """Markdown for the time-to-accuracy runs: the 20-minute run of each recipe
    (`results/market_tta_<recipe>.json`), then every other recorded run (`market_tta_*_*.json`
    and the shorter runs that chose the settings, `results/explore/*.json`)."""
    head = ["| recipe (file) | settings other than the preset | precision | epochs | minutes in all | minutes training | "
            "val Rank-1 per epoch | final Rank-1 / 5 / 10 | mAP | best Rank-1 | best Rank-1 by 20 min | "
            "20-minute target |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    main = [tta_row(results / f"market_tta_{r}.json", f"market_tta_{r}.json")
            for r in RECIPES if (results / f"market_tta_{r}.json").is_file()]
    others = [tta_row(p, p.relative_to(results).as_posix())
              for p in sorted(results.glob("market_tta_*_*.json")) + sorted(results.glob("explore/*.json"))]
    return "\n".join([
        "## 3. Time to accuracy on the Market-1501 layout (from scratch, CPU)", "",
        "Layout: `python make_data.py pool ../shared/data/market1501-train data_market --seed 0` "
        "(val: 49 gallery images, 355 queries). Each run:",
        "`python -m bench.time_to_accuracy data_market --recipe R --epochs E --minutes M [--set FIELD=VALUE ...] "
        "--out results/market_tta_R.json`. E is the length of the learning-rate schedule, chosen so that it "
        "ends inside the budget; a run stops after the epoch in which its M minutes pass. \"Minutes in all\" "
        "count training, the validation after every epoch and the checkpoint writes; \"minutes training\" "
        "only the optimisation steps; \"best Rank-1 by 20 min\" is the best val Rank-1 of the epochs that "
        "ended (validation included) within 20 minutes, the number the target is about. Each JSON holds the run's "
        "settings (\"config\") and its history; \"settings other than the preset\" compares them with "
        "today's preset (`TrainConfig.handout_id` / `handout_triplet` / `strong`).", "",
        "### The 20-minute runs", "", *(head + (main or ["| (no run recorded yet) |" + " |" * 11])), "",
        "### Other recorded runs (shorter budgets, earlier presets, settings tried)", "",
        *(head + (others or ["| (none) |" + " |" * 11])), "",
        "small_epochs / small_size: progressive resizing (the first epochs on images shrunk to 64×64, "
        "3.5× faster per image), tried on a branch and not kept: no gain for the ID recipe.",
    ])


def recorded_sections(results: Path = ROOT / "results") -> str:
    """Sections 3–6, the ones made of recorded runs in ``results``."""
    return "\n\n".join([tta_section(results), budget_section(results / "budget"), shape_section(results / "shape"),
                        rerank_section(results / "rerank_market.json")])


def rewrite_tta_section(path: Path = HERE / "BENCHMARKS.md") -> None:
    """Replace sections 3–6 of an existing BENCHMARKS.md (after a time-to-accuracy, budget, shape or
    re-ranking run), leaving the timed sections 1 and 2 as they were measured."""
    text = path.read_text()
    start = text.index("## 3. Time to accuracy")
    path.write_text(text[:start] + recorded_sections() + "\n")
    print(f"rewrote sections 3-6 of {path}")


def _recorded(results: Path, layouts: tuple, runs: tuple):
    """(layout, its label, run, its label, the run's JSON or None) for each layout × run, read from
    ``results/<layout>_<run>.json``."""
    for layout, label in layouts:
        for run, shown in runs:
            path = results / f"{layout}_{run}.json"
            yield layout, label, run, shown, (json.loads(path.read_text()) if path.is_file() else None)


def _best(h: dict) -> int:
    """Index of a run's best val Rank-1 epoch."""
    return max(range(len(h["rank1"])), key=h["rank1"].__getitem__)


def _means_of_3(finals: dict, runs: tuple, cells: str) -> list[str]:
    """Rows "40 ids, mean of 3 seeds" for each run with three (Rank-1, mAP) finals; ``cells`` formats
    the rest of the row from shown, r1 and m."""
    return ["| 40 ids, mean of 3 seeds " + cells.format(shown=shown, r1=sum(v[0] for v in finals[run]) / 3,
                                                         m=sum(v[1] for v in finals[run]) / 3)
            for run, shown in runs if len(finals[run]) == 3]


BUDGET_LAYOUTS = (("m40_s0", "40 ids, seed 0"), ("m40_s1", "40 ids, seed 1"), ("m40_s2", "40 ids, seed 2"),
                  ("market", "230 ids (Market layout, seed 0)"))


def budget_section(results: Path = ROOT / "results" / "budget") -> str:
    """Section 4: the handout ID preset (flips + shifts, plain CE) against the same loop with plain
    CE and no augmentation, at the default CPU budget, from results/budget/<layout>_{preset,plain}.json."""
    lines = ["## 4. Training budgets: the handout ID model at its default budget against plain CE",
             "",
             "Layouts: `python make_data.py pool ../shared/data/market1501-train DIR --train-ids 40 --val-ids 10 "
             "--test-ids 20 --seed S` (S = 0, 1, 2; val 10 gallery images, 62–72 queries) and the default "
             "230-identity layout (seed 0). Both runs of a pair have the same optimiser steps (the epochs of "
             "the CPU budget, `reid/budget.py`: 82 on 400 images — the budget gives 81, the runs were "
             "planned with 82 — and 14 on 2,300), the same precision (bfloat16 autocast) and seed; they "
             "differ only in the augmentation (the preset's random flips and shifts of up to 8 px: 1.3 % of a "
             "step, section 1). "
             "`python -m bench.time_to_accuracy DIR --recipe id --epochs E --minutes 90 "
             "[--set flip=false --set shift=0]`. Minutes are wall time as measured on the shared machine "
             "(most runs with one thread each, two at a time), so they say how long a run took, not which "
             "recipe is faster.",
             "",
             "| layout | run | epochs | final Rank-1 | final mAP | best Rank-1 (epoch) | minutes |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    finals: dict[str, list[tuple[float, float]]] = {"preset": [], "plain": []}
    runs = (("preset", "handout ID preset (flips + shifts)"), ("plain", "plain CE, no augmentation"))
    for layout, label, run, shown, h in _recorded(results, BUDGET_LAYOUTS, runs):
        if h is None:
            lines.append(f"| {label} | {shown} | not recorded | | | | |")
            continue
        best = _best(h)
        lines.append(f"| {label} | {shown} | {len(h['rank1'])} | {h['rank1'][-1]:.3f} | {h['mAP'][-1]:.3f} "
                     f"| {h['rank1'][best]:.3f} ({best + 1}) | {h['elapsed_seconds'][-1] / 60:.1f} |")
        if layout.startswith("m40"):
            finals[run].append((h["rank1"][-1], h["mAP"][-1]))
    lines += _means_of_3(finals, (("preset", "handout ID preset"), ("plain", "plain CE")), "| {shown} | | {r1:.3f} | {m:.3f} | | |")
    lines += ["", "### The handout triplet model: how many epochs",
              "",
              "The literal triplet preset (`TrainConfig.handout_triplet`) at the budget counted in images (a row "
              "is three images: 5 epochs on 2,300 rows) and counted in rows (14 epochs, as many passes as the ID "
              "model's): `python -m bench.time_to_accuracy DIR --recipe triplet --epochs E --minutes 90`, one "
              "thread each, two runs side by side; the 5-epoch synthetic run is the notebook's own (its committed "
              "full run before the budget counted rows). `reid/budget.py` now counts a row as one sample.",
              "",
              "| layout | epochs | val Rank-1 per epoch | final Rank-1 | final mAP | best Rank-1 (epoch) | computed verdict |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, label in (("synthetic_triplet_5ep", "synthetic (seed 0)"), ("synthetic_triplet_14ep", "synthetic (seed 0)"),
                        ("market_triplet_14ep", "230 ids, Market seed 0")):
        path = results / f"{name}.json"
        if not path.is_file():
            lines.append(f"| {label} | not recorded | | | | | |")
            continue
        run = json.loads(path.read_text())
        h, best = History.from_dict(run), _best(run)
        state = verdict(h).removeprefix("Verdict: ").split(";")[0]
        lines.append(f"| {label} | {len(h.rank1)} | {', '.join(f'{v:.3f}' for v in h.rank1)} | {h.rank1[-1]:.3f} | "
                     f"{h.mAP[-1]:.3f} | {h.rank1[best]:.3f} ({best + 1}) | {state} |")
    return "\n".join(lines)


SHAPE_LAYOUTS = (("market_s0", "230 ids, Market layout seed 0"),
                 ("market_s1", "230 ids, Market layout seed 1 (about 2/3 of its identities shared with seed 0)"),
                 ("m40_s0", "40 ids, layout seed 0"), ("m40_s1", "40 ids, layout seed 1"),
                 ("m40_s2", "40 ids, layout seed 2"))
SHAPES = (("128x64", "128×64, the person", True), ("144x72", "144×72, the person enlarged 1.125×", False),
          ("128x128", "128×128, C2's padded square", True))  # (file key, label, shown when not recorded)
BASE_SHAPE = "128x128"
SHAPE_MEASURES = ("val Rank-1", "val mAP", "test Rank-1", "test mAP")


def bootstrap_interval(values: list[float], level: float = 0.95, draws: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement
    ``draws`` times from a fixed seed, so the same values always give the same interval): the
    k-th smallest and k-th largest of the resampled means, k = draws × (1 − level) / 2."""
    rng = random.Random(seed)
    means = sorted(_mean(rng.choices(values, k=len(values))) for _ in range(draws))
    k = round(draws * (1 - level) / 2)
    return means[k], means[draws - 1 - k]


def _counts(diffs: list[float]) -> tuple[int, int, int]:
    """(ahead, level, behind): the differences above, at and below zero at three decimals."""
    shown = [round(d, 3) for d in diffs]
    return sum(d > 0 for d in shown), sum(d == 0 for d in shown), sum(d < 0 for d in shown)


def _signed(x: float) -> str:
    return f"{round(x, 3) + 0:+.3f}"  # + 0: no "-0.000"


def _shape_comparison(got: dict[str, dict[str, dict[int, dict]]], key: str, shown: str) -> list[str]:
    """Bullet lines comparing ``key`` with 128×128: per measure the layouts ahead / level / behind
    (each layout's means over the training seeds both shapes have), then the run pairs — the same
    layout and training seed, so the same initial weights (no parameter's shape depends on the
    input's) — with the mean difference and its 95 % bootstrap interval."""
    name = shown.split(",")[0]
    layouts, run_pairs = [], []  # per layout: (means at key, at 128×128); per run pair: (run at key, at 128×128)
    for runs in got.values():
        common = sorted(set(runs.get(key, {})) & set(runs.get(BASE_SHAPE, {})))
        if common:
            layouts.append(tuple(_shape_means([runs[k][seed] for seed in common]) for k in (key, BASE_SHAPE)))
            run_pairs += [tuple(_shape_means([runs[k][seed]]) for k in (key, BASE_SHAPE)) for seed in common]
    lines, by_run = [], []
    for measure in SHAPE_MEASURES:
        diff = [a[measure] - b[measure] for a, b in layouts if measure in a and measure in b]
        if not diff:
            continue
        ahead, level, behind = _counts(diff)
        lines.append(f"- {name} against 128×128, {measure} (mean over the training seeds both have): ahead on "
                     f"{ahead} of {len(diff)} layouts, level on {level}, behind on {behind}; by "
                     f"{_signed(min(diff))} to {_signed(max(diff))} (mean over the layouts {_signed(_mean(diff))}).")
        diff = [a[measure] - b[measure] for a, b in run_pairs if measure in a and measure in b]
        if len(diff) > 1:
            lo, hi = bootstrap_interval(diff)
            ahead, level, behind = _counts(diff)
            by_run.append(f"{measure} ahead in {ahead} of {len(diff)}, level in {level}, behind in {behind}, "
                          f"mean {_signed(_mean(diff))} [{_signed(lo)}, {_signed(hi)}]")
    if by_run:
        lines.append(f"- {name} against 128×128, run by run (the same layout and training seed, so the same initial "
                     "weights; mean difference with its 95 % bootstrap interval over the run pairs): "
                     + "; ".join(by_run) + ".")
    return lines


def _shape_runs(results: Path, layout: str, key: str) -> dict[int, dict]:
    """The recorded runs of one layout and input shape, {training seed: run JSON} in seed order
    (``reid.runs.shape_run_files``)."""
    return {seed: json.loads(path.read_text()) for seed, path in shape_run_files(results, layout, key).items()}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _shape_means(runs: list[dict]) -> dict[str, float]:
    """Mean over training seeds of the last epoch's val Rank-1 / mAP and, if every run has them, its
    test Rank-1 / mAP."""
    m = {"val Rank-1": _mean([h["rank1"][-1] for h in runs]), "val mAP": _mean([h["mAP"][-1] for h in runs])}
    if all("test" in h for h in runs):
        m.update({"test Rank-1": _mean([h["test"]["rank1"] for h in runs]),
                  "test mAP": _mean([h["test"]["mAP"] for h in runs])})
    return m


def shape_section(results: Path = ROOT / "results" / "shape") -> str:
    """Section 5: the stronger recipe at 128×64 (and, where recorded, 144×72) against itself at
    128×128, the runs side by side (one thread each) with schedules of about equal wall time, each
    trained with several seeds; per layout and shape the mean over the seeds of the last epoch's val
    and (where recorded, ``--test``) test numbers, the count of layouts on which each shape is ahead
    of 128×128 (over the training seeds both have) and the run-by-run differences with a bootstrap
    interval. Reads results/shape/<layout>_<H>x<W>.json (training seed 0)
    and <layout>_<H>x<W>_seed<S>.json."""
    lines = ["## 5. The stronger recipe's input shape: the person (128×64, 144×72) against 128×128 at equal "
             "wall time",
             "",
             "Each pair ran side by side on the 2-core CPU, one torch thread each, from random weights "
             "(`OMP_NUM_THREADS=1 python -m bench.time_to_accuracy DIR --recipe strong --epochs E --seed T "
             "--set input_size=HxW --test`, T the training seed: the initial weights and the batches); the "
             "128×64 run's schedule has 5/3 the epochs of the 128×128 run's (the throughput ratio of section 1), "
             "so the two take about the same wall time — the minutes column is their mean over the training "
             "seeds. The numbers are the last epoch's, averaged over the training seeds (the column before "
             "them gives each seed's val Rank-1 as seed: value). Val is the layout's val split; test is its "
             "test split, scored against the layout's `test_gt.csv` (`--test`), about twice as many queries "
             "as val and never used to choose anything. Layouts: `python make_data.py pool "
             "../shared/data/market1501-train DIR --seed L` (L the layout seed: which identities; 230 / 49 / "
             "100 identities) and `--train-ids 40 --val-ids 10 --test-ids 20` for the 40-identity ones. The "
             "layout-seed-1 Market layout draws its identities from the same pool of 751, so it shares about "
             "two thirds of them with layout seed 0 (in a different split); the 40-identity layouts are "
             "smaller draws from that pool.",
             "",
             "A third arm, 144×72, spends the time the unpadded shape saves on resolution instead of epochs: the "
             "person enlarged 1.125× (the map entering the pooling is 9×5 rather than 8×4; 1.36× the FLOPs of "
             "128×64), trained for 23 epochs on the Market layouts and 61 on the 40-identity ones: a little "
             "under the time of the 128×128 schedules, by its speed on one thread, 1.30–1.33× that of 128×128 "
             "(two runs of the same timing code, the later one `python -m bench.bench_train --shapes "
             "128x64,144x72 --threads 1`; the minutes column shows the outcome). Its runs also ran two at a "
             "time, one thread each, and it is compared with the same 128×128 runs. Below the table, each shape "
             "against 128×128: per layout (the mean over the training seeds), then run by run — a pair is the "
             "same layout and training seed, so the same initial weights — with the mean difference and its "
             "95 % bootstrap interval (10,000 resamples of the pairs). The pairs are not independent (the three "
             "of a layout share its queries, and the Market layouts share identities), so the intervals are if "
             "anything too narrow: one whose end is near zero says level, not ahead.",
             "",
             "| layout | input | epochs | minutes | training seeds | val Rank-1, each seed | val Rank-1 | val mAP | "
             "test Rank-1 | test mAP (queries) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    got = {layout: {key: runs for key, _, _ in SHAPES if (runs := _shape_runs(results, layout, key))}
           for layout, _ in SHAPE_LAYOUTS}  # {layout: {shape: {training seed: run}}}, recorded ones only
    shapes = [(key, shown) for key, shown, always in SHAPES  # an extra arm recorded nowhere is left out
              if always or any(key in runs for runs in got.values())]
    spreads: list[float] = []  # max − min of the last val Rank-1 over a layout and shape's training seeds
    for layout, label in SHAPE_LAYOUTS:
        for key, shown in shapes:
            runs = got[layout].get(key)
            if not runs:
                lines.append(f"| {label} | {shown} | not recorded | | | | | | | |")
                continue
            finals = [h["rank1"][-1] for h in runs.values()]
            if len(runs) > 1:
                spreads.append(max(finals) - min(finals))
            m = _shape_means(list(runs.values()))
            tested = sum("test" in h for h in runs.values())
            test_cells = (f"{m['test Rank-1']:.3f} | {m['test mAP']:.3f} "
                          f"({next(iter(runs.values()))['test']['queries']})" if "test Rank-1" in m
                          else f"not recorded for {len(runs) - tested} of {len(runs)} |")
            each = ", ".join(f"{seed}: {h['rank1'][-1]:.3f}" for seed, h in runs.items())
            epochs = sorted({len(h["rank1"]) for h in runs.values()})
            minutes = _mean([h["elapsed_seconds"][-1] for h in runs.values()]) / 60
            lines.append(f"| {label} | {shown} | {', '.join(map(str, epochs))} | {minutes:.1f} | {len(runs)} | "
                         f"{each} | {m['val Rank-1']:.3f} | {m['val mAP']:.3f} | {test_cells} |")
    groups = (("40 ids, mean of the 3 layouts", [lay for lay, _ in SHAPE_LAYOUTS if lay.startswith("m40")]),
              ("all 5 layouts, mean", [lay for lay, _ in SHAPE_LAYOUTS]))
    for group, members in groups:
        for key, shown in shapes:
            if all(key in got[layout] for layout in members):
                means = [_shape_means(list(got[layout][key].values())) for layout in members]
                cells = [f"{_mean([m[k] for m in means]):.3f}" if all(k in m for m in means) else ""
                         for k in SHAPE_MEASURES]
                lines.append(f"| {group} | {shown} | | | | | {' | '.join(cells)} |")
    lines.append("")
    for key, shown in shapes:
        if key != BASE_SHAPE:
            lines += _shape_comparison(got, key, shown)
    if spreads:
        lines.append(f"- The same layout, shape and schedule with another training seed: final val Rank-1 differs "
                     f"by {min(spreads):.3f} to {max(spreads):.3f} (max − min over the seeds, {len(spreads)} "
                     "layout × shape cells with more than one seed).")
    return "\n".join(lines)


def rerank_section(path: Path = ROOT / "results" / "rerank_market.json") -> str:
    """Section 6: every trained Market model with and without k-reciprocal re-ranking, from the JSON
    `python -m bench.rerank_market` writes."""
    lines = ["## 6. k-reciprocal re-ranking on the Market layout", ""]
    if not path.is_file():
        return "\n".join(lines + ["(not recorded yet: `python -m bench.rerank_market`)"])
    r = json.loads(path.read_text())
    k1, k2, lam = r["chosen_on_val"]
    d1, d2, dl = r["defaults"]
    precisions = sorted({m.get("precision", "float32") for m in r["models"].values()})
    lines += ["`python -m bench.rerank_market DATA NAME=CHECKPOINT ...` on checkpoints of models trained on this "
              "layout (kept outside git; the ID and triplet models are section 4's 14-epoch runs, the stronger "
              "recipe section 3's 20-minute run). Each model is measured as it was validated (its metric and "
              f"test-time flip, at its input size, features in {' / '.join(precisions)}) on val "
              f"({r['sizes']['val']['gallery']} gallery images, {r['sizes']['val']['queries']} queries) and on test "
              f"({r['sizes']['test']['gallery']} gallery images, {r['sizes']['test']['queries']} queries, scored with "
              "the built layout's `test_gt.csv`). Re-ranking is transductive: it uses all queries of a split at "
              f"once. Parameters: the defaults (k1 = {d1}, k2 = {d2}, λ = {dl}) and the point of a grid (k1 ∈ "
              f"{r['grid']['k1']}, k2 ∈ {r['grid']['k2']}, λ ∈ {r['grid']['lambda_value']}) with the highest mean "
              f"val mAP over the models, chosen on val: k1 = {k1}, k2 = {k2}, λ = {lam}, mean val mAP "
              f"{r['val_mean_mAP']['chosen']:.3f} against {r['val_mean_mAP']['defaults']:.3f} with the defaults; "
              f"checked on test, where it changes the mean mAP by {r['test_mean_mAP_gain']:+.4f}. "
              + ("It replaces the defaults." if r["replace_defaults"] else
                 f"The defaults stay (a choice must gain more than {r['margin']} mean mAP on val and again on test)."),
              "",
              "| model | split | plain Rank-1 / 5 / 10 | plain mAP | re-ranked (defaults) Rank-1 / 5 / 10 | "
              "re-ranked mAP | re-ranked (chosen on val) Rank-1 / mAP |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m in r["models"].items():
        size = "×".join(str(v) for v in m["input_size"])
        shown = f"{name} ({size}, {m['metric']}{', flip' if m['flip_test'] else ''}, {m['epochs']} epochs)"
        for split in ("val", "test"):
            p, d = m[split]["plain"], m[split]["defaults"]
            c = m["test"]["chosen"] if split == "test" else m["val"]["grid"][f"{k1},{k2},{lam}"]
            lines.append(f"| {shown} | {split} | {p['rank1']:.3f} / {p['rank5']:.3f} / {p['rank10']:.3f} | "
                         f"{p['mAP']:.3f} | {d['rank1']:.3f} / {d['rank5']:.3f} / {d['rank10']:.3f} | {d['mAP']:.3f} | "
                         f"{c['rank1']:.3f} / {c['mAP']:.3f} |")
    return "\n".join(lines)


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--section"] and len(args) in (2, 3) and args[1] in ("3", "4", "5", "6"):
        results = Path(args[2]) if len(args) == 3 else ROOT / "results"
        make = {"3": lambda: tta_section(results), "4": lambda: budget_section(results / "budget"),
                "5": lambda: shape_section(results / "shape"),
                "6": lambda: rerank_section(results / "rerank_market.json")}[args[1]]
        print(make())
        return 0
    if args == ["--tta-only"]:
        rewrite_tta_section()
        return 0
    if args == ["--budget-section"]:
        print(budget_section())
        return 0
    if args[:1] == ["--tta-section"] and len(args) <= 2:
        print(tta_section(Path(args[1]) if len(args) == 2 else ROOT / "results"))
        return 0
    if args == ["--check"]:
        if recorded_sections() in (HERE / "BENCHMARKS.md").read_text():
            return 0
        print(f"{HERE / 'BENCHMARKS.md'}: sections 3-6 are not what results/ gives; "
              "rewrite them with `python -m bench.run_all --tta-only`", file=sys.stderr)
        return 1
    if args:
        print(f"usage: python -m bench.run_all [--tta-only | --tta-section [RESULTS_DIR] | --section 3-6 [RESULTS_DIR] "
              f"| --check]; got {args}",
              file=sys.stderr)
        return 2
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    train = bench_train.main()
    evaluation = bench_eval.main()
    rerank = bench_rerank.main()
    doc = [
        "# Benchmarks",
        "",
        f"Written by `make bench` ({started}) on {platform.machine()}, {torch.get_num_threads()} torch threads, "
        f"torch {torch.__version__}, device {train['device']}; load average {load:.1f} at the start. "
        "The machine is shared and noisy: every speed figure is a ratio of two things measured side by side "
        "in the same run, with medians of several runs.",
        "",
        "## 1. Training and feature extraction: end to end against pure compute",
        "",
        "`python -m bench.bench_train` — end to end = the real loop (cache → batch → model → loss → step); "
        "pure compute = the same model, loss and step on a batch made in advance. The stronger-recipe rows "
        "train at the person's own 128×64 against C2's padded 128×128, side by side in the preset's precision "
        "(`--shape-only` runs just them).",
        "",
        bench_train.markdown(train),
        "",
        "## 2. Evaluation: Market-sized CMC / mAP against a per-query loop",
        "",
        "`python -m bench.bench_eval` — 3,368 queries × 15,913 gallery, 256-d, 751 ids, 6 cameras; "
        "the reference is the per-query numpy loop of `reid/reference/evaluation.py` (written like torchreid's "
        "`eval_market1501`).",
        "",
        evaluation["markdown"],
        "",
        *(["Beside torchreid's compiled evaluator (`eval_market1501_cy`, built outside this project from "
           "`torchreid/metrics/rank_cylib/rank_cy.pyx` with Cython and handed in with "
           "`REID_TORCHREID_CY=DIR make bench`), on the same distance matrix:", "",
           evaluation["compiled_markdown"], ""] if evaluation.get("compiled_markdown") else
          ["torchreid's compiled evaluator was not measured in this run (set `REID_TORCHREID_CY` to the "
           "folder of a built `rank_cy` module).", ""]),
        "## 2b. k-reciprocal re-ranking: Market-sized, against the per-probe numpy reference",
        "",
        "`python -m bench.bench_rerank` — `reid.rerank.rerank_distances` (torch: top-k and batched gathers, "
        "in blocks) beside `reid/reference/rerank.py` (a plain per-probe transcription of the authors' code), "
        "each in its own process (time, and peak memory = that process's `ru_maxrss`), on the same float32 "
        "distance matrices of 3,368 queries and 15,913 gallery images; k1 = 20, k2 = 6, λ = 0.3.",
        "",
        bench_rerank.markdown(rerank["rows"]),
        "",
        f"Load average (1 min) {rerank['load_average_start'][0]:.1f} at the start of this part and "
        f"{rerank['load_average_end'][0]:.1f} at its end.",
        "",
        recorded_sections(),
        "",
    ]
    out = HERE / "BENCHMARKS.md"
    out.write_text("\n".join(doc))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
