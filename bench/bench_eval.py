"""CMC / mAP / mINP: the vectorised ``reid.evaluate`` against a per-query numpy loop.

A random problem the size of Market-1501's test protocol: 3,368 queries, 15,913
gallery images, 256-d features, 751 identities, 6 cameras.  Features are an
identity centre + a camera shift + noise (fixed seed), so the metrics are far from
0 and 1.  Both sides get the same float32 distance matrix; the reference is
``reid/reference/evaluation.py`` (argsort each row, drop same id & camera, cumulative
matches, AP), written like the usual Market-1501 evaluator loop but with numpy
per query instead of a Python list per gallery item, so it is a stronger baseline
than a pure-Python loop.  The results must agree to 1e-6 or the run fails.

Rows:
* ``cmc_map_from_distances``: same input as the reference (a distance matrix);
* ``cmc_map`` from features: includes computing the distances (one matrix
  product, about 14 GFLOP);
* no identity signal: random features, so the hardest positive sits near the end
  of every gallery row (the vectorised code's worst case: every item is placed).

Optionally, beside them, torchreid's compiled evaluator (``eval_market1501_cy`` of
``torchreid/metrics/rank_cylib``: a full ``np.argsort`` of the distance matrix, then a
Cython loop per query): build it outside this project and name the folder that holds the
built ``rank_cy`` module with ``--torchreid-cy DIR`` or ``REID_TORCHREID_CY=DIR`` (in a
torchreid source tree: ``cd torchreid/metrics/rank_cylib && python setup.py build_ext
--inplace`` with Cython and the same numpy as here). It keeps float32 sums, so its numbers
may differ from ours by more than 1e-6 (9.6e-7 measured on the Market-sized problem); the
check is to 1e-4.

Ours: median of 5 runs after a warm-up (3 in the worst case); the reference:
median of 3 runs (1 in the worst case); ``--quick``: a quarter-sized problem,
ours 3 runs (1 in the worst case), the reference 1.  Torch runs with its default thread count and, as a
second row, with one thread like numpy.  The machine may be shared and noisy:
read the ratios, measured in one run.

    python -m bench.bench_eval [--quick] [--torchreid-cy DIR [--compiled-only]]

``--compiled-only`` times and checks only torchreid's evaluator against ours (a quick check
of a freshly built ``rank_cy``).
"""
from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reid.reference.evaluation import reference_cmc_map
from reid.evaluate import cmc_map, cmc_map_from_distances, pairwise_distance

NUM_Q, NUM_G, DIM, NUM_IDS, NUM_CAMS = 3368, 15913, 256, 751, 6
MAX_RANK = 50
TOLERANCE = 1e-6


def market_sized_problem(seed: int = 0, signal: bool = True, num_q: int = NUM_Q,
                         num_g: int = NUM_G) -> dict[str, torch.Tensor]:
    """Features ``[Q, 256]`` / ``[G, 256]`` float32, ids and cameras ``[Q]`` / ``[G]`` int64.

    With ``signal``: feature = identity centre + 0.5 x camera shift + 1.5 x noise
    (all standard normal); without: pure noise.
    """
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(NUM_IDS, DIM, generator=gen)
    shifts = torch.randn(NUM_CAMS, DIM, generator=gen)
    q_ids = torch.randint(0, NUM_IDS, (num_q,), generator=gen)
    g_ids = torch.randint(0, NUM_IDS, (num_g,), generator=gen)
    q_cams = torch.randint(0, NUM_CAMS, (num_q,), generator=gen)
    g_cams = torch.randint(0, NUM_CAMS, (num_g,), generator=gen)
    q_feats = 1.5 * torch.randn(num_q, DIM, generator=gen)
    g_feats = 1.5 * torch.randn(num_g, DIM, generator=gen)
    if signal:
        q_feats += centres[q_ids] + 0.5 * shifts[q_cams]
        g_feats += centres[g_ids] + 0.5 * shifts[g_cams]
    return {"q_feats": q_feats, "g_feats": g_feats, "q_ids": q_ids, "g_ids": g_ids,
            "q_cams": q_cams, "g_cams": g_cams}


def _median_time(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Median wall time of ``runs`` calls (seconds) and the last result."""
    times, out = [], None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _max_abs_diff(ours: dict, ref: dict) -> float:
    if ours["num_valid"] != ref["num_valid"]:
        raise AssertionError(f"num_valid differs: ours {ours['num_valid']}, reference {ref['num_valid']}")
    return max(float(np.abs(ours["cmc"].numpy() - ref["cmc"]).max()),
               abs(ours["mAP"] - ref["mAP"]), abs(ours["mINP"] - ref["mINP"]))


def _case(name: str, problem: dict, ours_runs: int, ref_runs: int,
          with_features: bool = True) -> list[dict[str, Any]]:
    """Time the reference, then ours from distances (and from features), per thread count."""
    p = problem
    dist = pairwise_distance(p["q_feats"], p["g_feats"])  # [Q, G] float32
    labels = (p["q_ids"], p["g_ids"], p["q_cams"], p["g_cams"])
    np_labels = [t.numpy() for t in labels]
    ref_s, ref = _median_time(lambda: reference_cmc_map(dist.numpy(), *np_labels, max_rank=MAX_RANK), ref_runs)
    calls = {"cmc_map_from_distances": lambda: cmc_map_from_distances(dist, *labels, max_rank=MAX_RANK)}
    if with_features:
        calls["cmc_map (features in)"] = lambda: cmc_map(p["q_feats"], p["g_feats"], *labels, max_rank=MAX_RANK)
    threads = torch.get_num_threads()
    rows = []
    for n_threads in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n_threads)
        try:
            for label, fn in calls.items():
                fn()  # warm-up
                ours_s, ours = _median_time(fn, ours_runs)
                diff = _max_abs_diff(ours, ref)
                if diff > TOLERANCE:
                    raise AssertionError(f"{name}, {label}: results differ from the reference by {diff:.3g}")
                rows.append({"case": name, "call": label, "threads": n_threads, "ours_s": ours_s,
                             "ref_s": ref_s, "speedup": ref_s / ours_s, "max_abs_diff": diff,
                             "ours_runs": ours_runs, "ref_runs": ref_runs, "mAP": ours["mAP"],
                             "mINP": ours["mINP"], "rank1": float(ours["cmc"][0])})
        finally:
            torch.set_num_threads(threads)
    return rows


CYTHON_TOLERANCE = 1e-4  # torchreid's Cython evaluator accumulates in float32


def _load_rank_cy(folder: Path):
    """The module ``rank_cy`` (a built extension or a .py) found in ``folder`` only."""
    spec = importlib.machinery.PathFinder.find_spec("rank_cy", [str(folder)])
    if spec is None or spec.loader is None:
        raise FileNotFoundError(f"{folder}: no rank_cy module there (expected rank_cy*.so or rank_cy.py, "
                                f"built in torchreid/metrics/rank_cylib)")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def compiled_case(name: str, problem: dict, folder: Path, runs: int) -> dict[str, Any]:
    """torchreid's ``evaluate_cy`` (imported from ``folder``) against ``cmc_map_from_distances``
    on the same float32 distance matrix, alternating so that machine load hits both alike."""
    rank_cy = _load_rank_cy(folder)
    p = problem
    dist = pairwise_distance(p["q_feats"], p["g_feats"])  # [Q, G] float32
    labels = (p["q_ids"], p["g_ids"], p["q_cams"], p["g_cams"])
    np_labels = [t.numpy() for t in labels]
    theirs_fn = lambda: rank_cy.evaluate_cy(dist.numpy(), *np_labels, MAX_RANK)  # noqa: E731
    ours_fn = lambda: cmc_map_from_distances(dist, *labels, max_rank=MAX_RANK)  # noqa: E731
    ours_fn(), theirs_fn()  # warm-up
    t_ours, t_theirs = [], []
    for _ in range(runs):
        s, ours = _median_time(ours_fn, 1)
        t_ours.append(s)
        s, (cmc, mean_ap) = _median_time(theirs_fn, 1)
        t_theirs.append(s)
    diff = max(float(np.abs(ours["cmc"].numpy() - cmc).max()), abs(ours["mAP"] - float(mean_ap)))
    if diff > CYTHON_TOLERANCE:
        raise AssertionError(f"{name}: torchreid's Cython evaluator differs from ours by {diff:.3g}")
    return {"case": name, "threads": torch.get_num_threads(), "ours_s": statistics.median(t_ours),
            "theirs_s": statistics.median(t_theirs), "runs": runs, "max_abs_diff": diff,
            "speedup": statistics.median(t / o for t, o in zip(t_theirs, t_ours))}


def markdown_compiled(r: dict[str, Any]) -> str:
    return "\n".join([
        "| problem | threads | ours s (median) | torchreid Cython s (median) | speed-up (median of pairs) | "
        "max abs diff (CMC, mAP) |", "| --- | --- | --- | --- | --- | --- |",
        f"| {r['case']} | {r['threads']} | {r['ours_s']:.3f} (of {r['runs']}) | {r['theirs_s']:.3f} "
        f"(of {r['runs']}) | {r['speedup']:.1f}x | {r['max_abs_diff']:.1e} |"])


def markdown(rows: list[dict[str, Any]]) -> str:
    """Markdown table of the rows returned by :func:`main`."""
    lines = ["| command | threads | ours s (median) | reference s (median) | speed-up | max abs diff | "
             "Rank-1 / mAP / mINP |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['call']}, {r['case']} | {r['threads']} | {r['ours_s']:.3f} (of {r['ours_runs']}) | "
            f"{r['ref_s']:.2f} (of {r['ref_runs']}) | {r['speedup']:.1f}x | {r['max_abs_diff']:.1e} | "
            f"{r['rank1']:.3f} / {r['mAP']:.3f} / {r['mINP']:.3f} |")
    return "\n".join(lines)


def _size(quick: bool) -> tuple[str, dict[str, int]]:
    """The problem's caption and its query / gallery counts (a quarter of Market's with ``quick``)."""
    if quick:
        return "quick 842 x 3978", {"num_q": NUM_Q // 4, "num_g": NUM_G // 4}
    return "Market-sized 3368 x 15913", {}


def check_compiled(folder: Path, quick: bool = False) -> int:
    """Only torchreid's evaluator from ``folder`` against ours: prints the table and returns 0, or
    prints why and returns 1 when the two disagree by more than CYTHON_TOLERANCE."""
    size, shape = _size(quick)
    try:
        row = compiled_case(size, market_sized_problem(0, True, **shape), folder, 3 if quick else 5)
    except AssertionError as err:
        print(f"bench.bench_eval: {err}", file=sys.stderr)
        return 1
    print(markdown_compiled(row))
    return 0


def main(quick: bool = False, torchreid_cy: Path | None = None) -> dict[str, Any]:
    """Run the benchmark, print a markdown table, return the numbers.

    torchreid_cy: folder of a built torchreid ``rank_cy`` module (default: $REID_TORCHREID_CY,
    if set) to time beside ours; None skips that comparison.

    Returns:
        ``{"rows": [per measurement: case, call, threads, ours_s, ref_s, speedup,
        max_abs_diff, ...], "markdown": str, "load_avg_1min": float,
        "best_speedup_from_distances": float, "compiled": dict | None,
        "compiled_markdown": str | None}``.
    """
    if torchreid_cy is None and os.environ.get("REID_TORCHREID_CY"):
        torchreid_cy = Path(os.environ["REID_TORCHREID_CY"])
    ours_runs, ref_runs = (3, 1) if quick else (5, 3)
    size, shape = _size(quick)
    rows = _case(size, market_sized_problem(0, True, **shape), ours_runs, ref_runs)
    rows += _case(size + ", no identity signal", market_sized_problem(1, False, **shape), max(1, ours_runs - 2), 1,
                  with_features=False)
    table = markdown(rows)
    compiled = compiled_md = None
    if torchreid_cy is not None:
        compiled = compiled_case(size, market_sized_problem(0, True, **shape), torchreid_cy, ours_runs)
        compiled_md = markdown_compiled(compiled)
    load = os.getloadavg()[0]
    print(table)
    if compiled_md:
        print(compiled_md)
    print(f"(1-minute load average at the end: {load:.1f} on {os.cpu_count()} CPUs)")
    main_rows = [r for r in rows if r["call"] == "cmc_map_from_distances" and "signal" not in r["case"]]
    return {"rows": rows, "markdown": table, "load_avg_1min": load,
            "best_speedup_from_distances": max(r["speedup"] for r in main_rows),
            "compiled": compiled, "compiled_markdown": compiled_md}


def cli(argv: list[str] | None = None) -> int:
    """The command line (``python -m bench.bench_eval ...``); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter-sized problem, fewer runs")
    parser.add_argument("--torchreid-cy", type=Path, default=None,
                        help="folder holding a built torchreid rank_cy module, to time beside ours")
    parser.add_argument("--compiled-only", action="store_true",
                        help="with --torchreid-cy: only time and check torchreid's evaluator against ours")
    args = parser.parse_args(argv)
    if args.compiled_only:
        if args.torchreid_cy is None:
            parser.error("--compiled-only needs --torchreid-cy DIR")
        return check_compiled(args.torchreid_cy, args.quick)
    main(quick=args.quick, torchreid_cy=args.torchreid_cy)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
