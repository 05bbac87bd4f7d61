"""BENCHMARKS.md section 5: the stronger recipe's input shape (the person at 128×64 and 144×72) against
128×128 at equal wall time, from results/shape/."""
from __future__ import annotations

import json
from pathlib import Path

from reid.runs import shape_run_files
from reid.stats import bootstrap_interval, mean as _mean

ROOT = Path(__file__).resolve().parent.parent

SHAPE_LAYOUTS = (("market_s0", "230 ids, Market layout seed 0"),
                 ("market_s1", "230 ids, Market layout seed 1 (about 2/3 of its identities shared with seed 0)"),
                 ("m40_s0", "40 ids, layout seed 0"), ("m40_s1", "40 ids, layout seed 1"),
                 ("m40_s2", "40 ids, layout seed 2"))
SHAPES = (("128x64", "128×64, the person", True), ("144x72", "144×72, the person enlarged 1.125×", False),
          ("128x128", "128×128, C2's padded square", True))  # (file key, label, shown when not recorded)
BASE_SHAPE = "128x128"
SHAPE_MEASURES = ("val Rank-1", "val mAP", "test Rank-1", "test mAP")


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


def _shape_means(runs: list[dict]) -> dict[str, float]:
    """Mean over training seeds of the last epoch's val Rank-1 / mAP and, if every run has them, its
    test Rank-1 / mAP."""
    m = {"val Rank-1": _mean([h["rank1"][-1] for h in runs]), "val mAP": _mean([h["mAP"][-1] for h in runs])}
    if all("test" in h for h in runs):
        m.update({"test Rank-1": _mean([h["test"]["rank1"] for h in runs]),
                  "test mAP": _mean([h["test"]["mAP"] for h in runs])})
    return m


def _shape_intro() -> list[str]:
    """Section 5's heading, how the runs were made, and the table's header."""
    return ["## 5. The stronger recipe's input shape: the person (128×64, 144×72) against 128×128 at equal "
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


def _shape_rows(got: dict, shapes: list[tuple[str, str]]) -> tuple[list[str], list[float]]:
    """One table row per layout and shape (means over the training seeds), and the spread of the last val
    Rank-1 over the seeds of each layout × shape with more than one."""
    lines: list[str] = []
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
    return lines, spreads


def shape_section(results: Path = ROOT / "results" / "shape") -> str:
    """Section 5: the stronger recipe at 128×64 (and, where recorded, 144×72) against itself at
    128×128, the runs side by side (one thread each) with schedules of about equal wall time, each
    trained with several seeds; per layout and shape the mean over the seeds of the last epoch's val
    and (where recorded, ``--test``) test numbers, the count of layouts on which each shape is ahead
    of 128×128 (over the training seeds both have) and the run-by-run differences with a bootstrap
    interval. Reads results/shape/<layout>_<H>x<W>.json (training seed 0)
    and <layout>_<H>x<W>_seed<S>.json."""
    lines = _shape_intro()
    got = {layout: {key: runs for key, _, _ in SHAPES if (runs := _shape_runs(results, layout, key))}
           for layout, _ in SHAPE_LAYOUTS}  # {layout: {shape: {training seed: run}}}, recorded ones only
    shapes = [(key, shown) for key, shown, always in SHAPES  # an extra arm recorded nowhere is left out
              if always or any(key in runs for runs in got.values())]
    rows, spreads = _shape_rows(got, shapes)
    lines += rows
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
