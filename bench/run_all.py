"""`make bench`: run the benchmarks in one process and rewrite bench/BENCHMARKS.md.

1. Training and feature-extraction throughput, end to end against pure compute (bench_train),
   and the stronger recipe at 128×64 against 128×128.
2. Market-sized evaluation against a per-query numpy loop (bench_eval), and k-reciprocal
   re-ranking against the per-probe numpy reference (bench_rerank; the reference needs about
   1.5 minutes and 12 GB at that size).
3.–8. Made of recorded runs (results/): 3 time to accuracy (`python -m bench.time_to_accuracy`,
   up to 20 minutes each, started by hand; the command is in the section), 4 training budgets
   (results/budget/), 5 the stronger recipe's input shape at equal wall time (results/shape/),
   6 re-ranking on the Market layout (results/rerank_market.json), 7 the pretrained start
   (results/pretrained/), 8 training as long as the curve gains, on three priors (results/ceiling/),
   9 training speed by machine and precision (results/speed/). bench/sections.py, bench/shape_report.py,
   bench/pretrained_report.py, bench/ceiling_report.py and bench/speed_report.py write them.

    python -m bench.run_all                  # everything (make bench)
    python -m bench.run_all --tta-only       # rewrite sections 3-9 of BENCHMARKS.md from results/
    python -m bench.run_all --tta-section [RESULTS_DIR]   # print section 3 made of RESULTS_DIR
    python -m bench.run_all --check          # exit 1 unless BENCHMARKS.md holds sections 3-9 of results/
    python -m bench.run_all --section N [RESULTS_DIR]   # print section N (3-9) made of RESULTS_DIR
"""
from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import torch

from bench import bench_eval, bench_rerank, bench_train
from bench.ceiling_report import ceiling_section
from bench.pretrained_report import pretrained_section
from bench.sections import budget_section, rerank_section, tta_section
from bench.shape_report import shape_section
from bench.speed_report import speed_section

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

SECTIONS = {"3": tta_section, "4": lambda r: budget_section(r / "budget"), "5": lambda r: shape_section(r / "shape"),
            "6": lambda r: rerank_section(r / "rerank_market.json"), "7": lambda r: pretrained_section(r / "pretrained"),
            "8": lambda r: ceiling_section(r / "ceiling"), "9": lambda r: speed_section(r / "speed")}
"""Section number → the function that writes it from a results folder."""



def recorded_sections(results: Path = ROOT / "results") -> str:
    """Sections 3–9, the ones made of recorded runs in ``results``."""
    return "\n\n".join(SECTIONS[n](results) for n in SECTIONS)


def rewrite_tta_section(path: Path = HERE / "BENCHMARKS.md") -> None:
    """Replace sections 3–9 of an existing BENCHMARKS.md (after a time-to-accuracy, budget, shape,
    re-ranking or pretrained-start run), leaving the timed sections 1 and 2 as they were measured."""
    text = path.read_text()
    start = text.index("## 3. Time to accuracy")
    path.write_text(text[:start] + recorded_sections() + "\n")
    print(f"rewrote sections 3-9 of {path}")


def _check() -> int:
    """0 when BENCHMARKS.md holds sections 3–9 as results/ gives them, else 1 with a message."""
    if recorded_sections() in (HERE / "BENCHMARKS.md").read_text():
        return 0
    print(f"{HERE / 'BENCHMARKS.md'}: sections 3-9 are not what results/ gives; "
          "rewrite them with `python -m bench.run_all --tta-only`", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--section"] and len(args) in (2, 3) and args[1] in SECTIONS:
        print(SECTIONS[args[1]](Path(args[2]) if len(args) == 3 else ROOT / "results"))
    elif args[:1] == ["--tta-section"] and len(args) <= 2:
        print(tta_section(Path(args[1]) if len(args) == 2 else ROOT / "results"))
    elif args == ["--tta-only"]:
        rewrite_tta_section()
    elif args == ["--budget-section"]:
        print(budget_section())
    elif args == ["--check"]:
        return _check()
    elif args:
        print(f"usage: python -m bench.run_all [--tta-only | --tta-section [RESULTS_DIR] | --section 3-9 [RESULTS_DIR] "
              f"| --check]; got {args}", file=sys.stderr)
        return 2
    else:
        out = HERE / "BENCHMARKS.md"
        out.write_text(benchmarks_document())
        print(f"wrote {out}")
    return 0


def benchmarks_document() -> str:
    """Run sections 1–2's benchmarks now and return the whole BENCHMARKS.md, sections 3–9 from results/."""
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
    return "\n".join(doc)


if __name__ == "__main__":
    sys.exit(main())
