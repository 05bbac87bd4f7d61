"""k-reciprocal re-ranking: ``reid.rerank`` (torch) beside the per-probe numpy reference.

The problem: Market-1501's test protocol size, 3,368 queries and 15,913 gallery images
(19,281 in all), 256-d features of 751 identities seen by 6 cameras: feature =
identity centre + 0.5 x camera shift + 1.5 x noise (standard normal, fixed seed), so
each identity is a cluster of about 26 images.  Both sides get the same float32
Euclidean distance matrices (``reid.evaluate.pairwise_distance``) and the paper's
parameters k1 = 20, k2 = 6, lambda = 0.3.

Each side runs in its own child process (``--child``), so that its peak memory
(``ru_maxrss`` of that process, from ``os.wait4``) is its own: the figure includes
Python, torch and the input matrices (about 1.3 GB at Market size: ``g_g`` alone is
1 GB); the RSS just before the call is reported beside it.  Ours: median of 3 calls;
the reference (minutes, 6-8 GB at Market size): one call.  Ours runs twice, with
torch's default thread count and with one thread like numpy (on a loaded machine,
two OpenMP threads may wait on each other at every operation).  The parent then compares the
two ``[Q, G]`` outputs: max abs difference (must be <= 1e-5 or the run fails), the
share of queries with the same top-1 gallery image, and Rank-1 / mAP of both
(``reid.evaluate.cmc_map_from_distances``; cameras as in Market's protocol).

    python -m bench.bench_rerank            # Market-sized, writes results/bench_rerank.json
    python -m bench.bench_rerank --quick    # 1/8 and 1/4 sizes, results/bench_rerank_quick.json

The machine may be shared: the load average at the start and end is printed and saved.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.evaluate import cmc_map_from_distances, pairwise_distance
from reid.reference.rerank import rerank_reference
from reid.rerank import rerank_distances

ROOT = Path(__file__).resolve().parent.parent
NUM_Q, NUM_G, DIM, NUM_IDS, NUM_CAMS = 3368, 15913, 256, 751, 6
PARAMS = {"k1": 20, "k2": 6, "lambda_value": 0.3}
TOLERANCE = 1e-5


def problem(num_q: int, num_g: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Features ``[Q, 256]`` / ``[G, 256]`` float32 and ids / cameras ``[Q]`` / ``[G]`` int64."""
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(NUM_IDS, DIM, generator=gen)
    shifts = torch.randn(NUM_CAMS, DIM, generator=gen)
    out: dict[str, torch.Tensor] = {}
    for side, n in (("q", num_q), ("g", num_g)):
        ids = torch.randint(0, NUM_IDS, (n,), generator=gen)
        cams = torch.randint(0, NUM_CAMS, (n,), generator=gen)
        noise = 1.5 * torch.randn(n, DIM, generator=gen)
        out[f"{side}_feats"] = centres[ids] + 0.5 * shifts[cams] + noise
        out[f"{side}_ids"], out[f"{side}_cams"] = ids, cams
    return out


def _rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc/self/statm."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(side: str, num_q: int, num_g: int, runs: int, threads: int, out_path: Path) -> None:
    """Build the problem, time ``runs`` calls of one side, save its output and timings."""
    if threads:
        torch.set_num_threads(threads)
    p = problem(num_q, num_g)
    q, g = p["q_feats"], p["g_feats"]
    mats = (pairwise_distance(q, g), pairwise_distance(q, q), pairwise_distance(g, g))
    del p, q, g
    if side == "reference":
        mats = tuple(m.numpy() for m in mats)
    fn = rerank_reference if side == "reference" else rerank_distances
    before, times, result = _rss_mb(), [], None
    for _ in range(runs):
        result = None  # free the previous output before the next call
        t0 = time.perf_counter()
        result = fn(*mats, **PARAMS)
        times.append(time.perf_counter() - t0)
    np.save(out_path.with_suffix(".npy"), np.asarray(result))
    out_path.write_text(json.dumps({"times_s": times, "rss_before_call_mb": before,
                                    "threads": torch.get_num_threads()}))


def _run_child(side: str, num_q: int, num_g: int, runs: int, tmp: Path,
               threads: int = 0) -> tuple[dict[str, Any], np.ndarray]:
    """One side in a fresh process; its timings, peak RSS (MB, ``ru_maxrss``) and output."""
    out_path = tmp / f"{side}_{threads}.json"
    cmd = [sys.executable, "-m", "bench.bench_rerank", "--child", side, "--size", f"{num_q}x{num_g}",
           "--runs", str(runs), "--threads", str(threads), "--out", str(out_path)]
    proc = subprocess.Popen(cmd, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} child failed with exit code {proc.returncode}: {' '.join(cmd)}")
    info = json.loads(out_path.read_text())
    info["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    info["median_s"] = statistics.median(info["times_s"])
    return info, np.load(out_path.with_suffix(".npy"))


def _scores(dist: np.ndarray, p: dict[str, torch.Tensor]) -> dict[str, float]:
    cm = cmc_map_from_distances(torch.from_numpy(dist), p["q_ids"], p["g_ids"], p["q_cams"], p["g_cams"])
    return {"rank1": float(cm["cmc"][0]), "mAP": float(cm["mAP"])}


def case(num_q: int, num_g: int, ours_runs: int) -> list[dict[str, Any]]:
    """Both sides on one size, ours with torch's default threads and with one thread
    (like numpy); raises if they differ by more than ``TOLERANCE``."""
    with tempfile.TemporaryDirectory(prefix="bench_rerank_") as tmp:
        ref, d_ref = _run_child("reference", num_q, num_g, 1, Path(tmp))
        ours = [_run_child("ours", num_q, num_g, ours_runs, Path(tmp), threads) for threads in (0, 1)]
    return [_compare(num_q, num_g, o, d_o, ref, d_ref) for o, d_o in ours]


def _compare(num_q: int, num_g: int, ours: dict[str, Any], d_ours: np.ndarray, ref: dict[str, Any],
             d_ref: np.ndarray) -> dict[str, Any]:
    """Agreement and scores of one run of ours against the reference."""
    p = problem(num_q, num_g)
    original = pairwise_distance(p["q_feats"], p["g_feats"]).numpy()
    diff = float(np.abs(d_ours - d_ref).max())
    row = {"num_q": num_q, "num_g": num_g, **PARAMS, "ours": ours, "reference": ref,
           "speedup": ref["median_s"] / ours["median_s"], "max_abs_diff": diff,
           "top1_same": float((d_ours.argmin(1) == d_ref.argmin(1)).mean()),
           "scores_ours": _scores(d_ours, p), "scores_reference": _scores(d_ref, p),
           "scores_original": _scores(original, p)}
    if diff > TOLERANCE:
        raise AssertionError(f"{num_q} x {num_g}: ours differs from the reference by {diff:.3g}")
    return row


def markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown table (header + one row per size) for bench/BENCHMARKS.md."""
    lines = ["| command | threads | ours s (median) / peak MB (before call) | reference s / peak MB (before call) "
             "| speed-up | max abs diff | same top-1 | Rank-1 / mAP: original -> re-ranked (ours = reference) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        o, f, so, sr, s0 = r["ours"], r["reference"], r["scores_ours"], r["scores_reference"], r["scores_original"]
        same = "yes" if abs(so["rank1"] - sr["rank1"]) + abs(so["mAP"] - sr["mAP"]) < 1e-6 else "NO"
        lines.append(
            f"| rerank_distances k1=20 k2=6 λ=0.3, {r['num_q']} x {r['num_g']} | {o['threads']} "
            f"| {o['median_s']:.2f} (of {len(o['times_s'])}) / {o['peak_rss_mb']:.0f} ({o['rss_before_call_mb']:.0f}) "
            f"| {f['median_s']:.1f} / {f['peak_rss_mb']:.0f} ({f['rss_before_call_mb']:.0f}) "
            f"| {r['speedup']:.1f}x | {r['max_abs_diff']:.1e} | {100 * r['top1_same']:.2f} % "
            f"| {s0['rank1']:.3f} / {s0['mAP']:.3f} -> {so['rank1']:.3f} / {so['mAP']:.3f} ({same}) |")
    return "\n".join(lines)


def main(quick: bool = False) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; return the numbers."""
    sizes = [(NUM_Q // 8, NUM_G // 8), (NUM_Q // 4, NUM_G // 4)] if quick else [(NUM_Q, NUM_G)]
    load_start = os.getloadavg()
    rows = [row for nq, ng in sizes for row in case(nq, ng, ours_runs=3)]
    result = {"rows": rows, "load_average_start": load_start, "load_average_end": os.getloadavg(),
              "cpu_count": os.cpu_count(), "torch": torch.__version__, "numpy": np.__version__,
              "command": "python -m bench.bench_rerank" + (" --quick" if quick else "")}
    print(markdown(rows))
    print(f"load average (1, 5, 15 min) at start {load_start}, at end {result['load_average_end']}")
    out = ROOT / "results" / ("bench_rerank_quick.json" if quick else "bench_rerank.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/8 and 1/4 of Market's size")
    parser.add_argument("--child", choices=["ours", "reference"], help=argparse.SUPPRESS)
    parser.add_argument("--size", default=f"{NUM_Q}x{NUM_G}", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        nq, ng = (int(x) for x in args.size.split("x"))
        child(args.child, nq, ng, args.runs, args.threads, args.out)
    else:
        main(quick=args.quick)
