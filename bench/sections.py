"""BENCHMARKS.md sections made of recorded runs: 3 (time to accuracy), 4 (training budgets) and 6
(re-ranking on the Market layout). Section 5 is bench/shape_report.py, section 7 bench/pretrained_report.py;
bench/run_all.py puts them together."""
from __future__ import annotations

import json
from pathlib import Path

from reid.report import verdict
from reid.runs import settings_changed
from reid.train import History

ROOT = Path(__file__).resolve().parent.parent

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
        state = verdict(h).removeprefix("Val curve: ").split(";")[0]
        lines.append(f"| {label} | {len(h.rank1)} | {', '.join(f'{v:.3f}' for v in h.rank1)} | {h.rank1[-1]:.3f} | "
                     f"{h.mAP[-1]:.3f} | {h.rank1[best]:.3f} ({best + 1}) | {state} |")
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
