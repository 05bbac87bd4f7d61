"""`make bench`: run the benchmarks in one process and rewrite bench/BENCHMARKS.md.

1. Training and feature-extraction throughput, end to end against pure compute (bench_train).
2. Market-sized evaluation against a per-query numpy loop (bench_eval).
3. Time to accuracy: read from the JSONs that `bench/time_to_accuracy.py` writes
   (`results/market_tta_<recipe>.json`, `results/market_tta_*_*.json`, `results/explore/`);
   those runs take up to 20 minutes each, so they are started by hand (the command is in
   the file) and not by `make bench`; `python bench/run_all.py --tta-only` rewrites just
   this section after one.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import bench_eval  # noqa: E402
import bench_train  # noqa: E402
import torch  # noqa: E402

RECIPES = {"id": "handout ID loss", "triplet": "handout triplet loss", "strong": "stronger recipe"}
TARGETS = {"id": 0.45, "triplet": 0.40, "strong": 0.60}
# Settings that say how a run was run, not what it trained; amp is shown as its own column
# (the precision the run trained in).
_RUN_ONLY = {"epochs", "time_budget_s", "seed", "device", "eval_batch_size", "max_iters_per_epoch", "amp"}


def _unused(cfg: dict) -> set[str]:
    """Settings a recipe does not read (p, k without P×K batches; batch_size with them; …)."""
    recipe, mining = cfg["recipe"], cfg.get("mining", "none")
    if recipe == "id":
        return {"p", "k", "margin", "mining"}
    if recipe == "strong":
        return {"batch_size", "mining"}
    return {"batch_size"} if mining in ("batch_hard", "batch_all") else {"p", "k"}


def settings_changed(cfg: dict) -> str:
    """The settings of a recorded run that differ from today's preset of its recipe, or "preset".

    A setting the code did not have yet when the run was made counts as its TrainConfig default
    (what the code did before the setting existed: listed triplets, no test-time flip, …)."""
    from time_to_accuracy import PRESETS  # bench/ is on sys.path
    from reid.train import TrainConfig

    preset = PRESETS[cfg["recipe"]](epochs=cfg["epochs"]).to_dict()
    known = TrainConfig().to_dict()
    full = {**known, **cfg}
    skip = _RUN_ONLY | _unused(full)
    diff = [f"{k}={v}" for k, v in full.items() if k not in skip and k in preset and preset[k] != v]
    diff += [f"{k}={v}" for k, v in cfg.items() if k not in known]  # a setting no longer in the code
    return ", ".join(diff) if diff else "preset"


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
        "`python bench/time_to_accuracy.py data_market --recipe R --epochs E --minutes M [--set FIELD=VALUE ...] "
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


def rewrite_tta_section(path: Path = HERE / "BENCHMARKS.md") -> None:
    """Replace section 3 of an existing BENCHMARKS.md (after a time-to-accuracy run), leaving
    the timed sections 1 and 2 as they were measured."""
    text = path.read_text()
    start = text.index("## 3. Time to accuracy")
    path.write_text(text[:start] + tta_section() + "\n")
    print(f"rewrote section 3 of {path}")


def main() -> None:
    if sys.argv[1:] == ["--tta-only"]:
        rewrite_tta_section()
        return
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = os.getloadavg()[0]
    train = bench_train.main()
    evaluation = bench_eval.main()
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
        "`python bench/bench_train.py` — end to end = the real loop (cache → batch → model → loss → step); "
        "pure compute = the same model, loss and step on a batch made in advance.",
        "",
        bench_train.markdown(train),
        "",
        "## 2. Evaluation: Market-sized CMC / mAP against a per-query loop",
        "",
        "`python bench/bench_eval.py` — 3,368 queries × 15,913 gallery, 256-d, 751 ids, 6 cameras; "
        "the reference is the per-query numpy loop of `bench/reference_eval.py` (written like torchreid's "
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
        tta_section(),
        "",
    ]
    out = HERE / "BENCHMARKS.md"
    out.write_text("\n".join(doc))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
