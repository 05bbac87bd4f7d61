"""`make bench`: run the benchmarks in one process and rewrite bench/BENCHMARKS.md.

1. Training and feature-extraction throughput, end to end against pure compute (bench_train).
2. Market-sized evaluation against a per-query numpy loop (bench_eval).
3. Time to accuracy: read from the History JSONs of `bench/time_to_accuracy.py` runs
   (`results/market_tta_<recipe>.json`); those runs take 10–20 minutes each, so they are
   started by hand (the command is printed in the file) and not by `make bench`.
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


def tta_section(results: Path = ROOT / "results") -> str:
    """Markdown for the time-to-accuracy runs found in `results/market_tta_<recipe>.json`."""
    lines = ["## 3. Time to accuracy on the Market-1501 layout (from scratch, CPU)", "",
             "Layout: `python make_data.py pool ../shared/data/market1501-train data_market --seed 0`. Each run:",
             "`python bench/time_to_accuracy.py data_market --recipe R --epochs E --minutes M --out results/market_tta_R.json`",
             "(E sets the length of the learning-rate schedule so that it finishes inside the budget). Runs recorded: "
             "id E=4 M=9, triplet E=2 M=9, strong E=5 M=9, and strong E=15 M=20 (`--out results/market_tta_strong_20min.json`);"
             " a run stops after the epoch in which its M minutes pass.", "",
             "| recipe | epochs | minutes (training + validation) | val Rank-1 per epoch | final Rank-1 / 5 / 10 | mAP | our 20-minute target |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    found = False
    for path in sorted(results.glob("market_tta_*.json")):
        found = True
        h = json.loads(path.read_text())
        recipe = h["recipe"]
        r1 = h["rank1"]
        minutes = h["elapsed_seconds"][-1] / 60 if h["elapsed_seconds"] else 0.0
        curve = ", ".join(f"{v:.3f}" for v in r1)
        lines.append(f"| {RECIPES[recipe]} (`{path.name}`) | {len(r1)} | {minutes:.1f} | {curve} | "
                     f"{r1[-1]:.3f} / {h['rank5'][-1]:.3f} / {h['rank10'][-1]:.3f} | {h['mAP'][-1]:.3f} | "
                     f"≥ {TARGETS[recipe]:.2f} |")
    if not found:
        lines.append("| (no run recorded yet) | | | | | | |")
    return "\n".join(lines)


def main() -> None:
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
        tta_section(),
        "",
    ]
    out = HERE / "BENCHMARKS.md"
    out.write_text("\n".join(doc))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
