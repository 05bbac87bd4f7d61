"""Training and feature-extraction throughput: the real loop against pure compute, one process.

End to end = ``reid.train.train_epoch`` on the "id" recipe (cache → index batch → model →
CE → Adam step → LR schedule), batch 64, ModifiedResNet18 + ReIDNet at 128×128.
Pure compute = the same model, loss and step on a batch made in advance. Each is measured
in float32 and under bfloat16 autocast (the default on a CPU with bfloat16 in hardware, see
``reid.device.cpu_has_bf16``); the four are run in turn, round after round, and the median
(and best) of the rounds is reported. Ratios are medians over rounds, whose runs share
about the same load on a shared machine: end-to-end img/s ÷ pure img/s (target ≥ 0.90) per
precision, and bfloat16 ÷ float32 end to end. The same for ``extract_features`` on a cache
against ``model.embed`` on ready tensors. Achieved GFLOP/s uses the FLOPs of one step counted
by ``torch.utils.flop_counter.FlopCounterMode``, next to large float32 and bfloat16 matmuls
measured in the same run. The machine may be shared: ratios are what to read.

Input shape (issue 16): the stronger recipe (``TrainConfig.strong``: P×K batches, BNNeckNet,
batch-hard triplet + CE) at the person's own 128×64 against C2's padded 128×128, end to end
(``train_epoch`` over a float16 cache of that shape) and pure compute, the four alternated
round after round in the preset's precision (bfloat16 autocast where the CPU has it): the
throughput ratio 128×64 ÷ 128×128 (the FLOPs say 2×) and end to end ÷ pure per shape.

    python -m bench.bench_train [--quick] [--shape-only] [--threads N]
    python -m bench.bench_train --shapes 128x64,144x72 [--base-epochs 18] [--threads 1]

``--shapes``: only the stronger recipe's end-to-end speed at those shapes against 128×128, and the
epochs an equal-wall-time schedule gets (section 5's arms beyond 128×64).
"""
from __future__ import annotations

import argparse
import json
import sys
import os
import statistics
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from reid.data import ImageCache
from reid.evaluate import extract_features
from reid.model import build_model
from reid.device import cpu_has_bf16, pick_device, resolve_amp, seed_everything
from reid.losses import batch_hard_triplet_loss, id_loss
from reid.runs import SettingError, parse_setting
from reid.train import TrainConfig, build_run, train_epoch

BATCH = 64
NUM_IDS = 230
SQUARE, PERSON = (128, 128), (128, 64)
"""C2's padded square and the person's own shape, (H, W)."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fake_idloss_set(n: int, device: torch.device, seed: int = 0, size: tuple[int, int] = SQUARE,
                    per_id: int | None = None) -> SimpleNamespace:
    """An IDLossDataset look-alike: float16 cache [n, 3, H, W] (``size`` = (H, W)) on ``device``,
    ids [n]: random, or ``per_id`` images of each identity in turn (for P×K batches)."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, *size, generator=g).to(torch.float16)
    cache = ImageCache([Path(f"fake/{i}.jpg") for i in range(n)], images=images.to(device))
    ids = torch.randint(NUM_IDS, (n,), generator=g) if per_id is None else torch.arange(n) // per_id
    return SimpleNamespace(cache=cache, ids=ids, num_ids=int(ids.max()) + 1)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _alternate(fns: list[Callable[[], object]], reps: int, device: torch.device) -> list[list[float]]:
    """Run fns[0], fns[1], …, fns[0], fns[1], … (reps rounds) so that load changes on a shared
    machine hit all of them; the times of each function, round by round."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for fn, t in zip(fns, times):
            t.append(_time(fn, device))
    return times


def paired_ratio(t_slow: list[float], t_fast: list[float]) -> float:
    """Median over rounds of t_slow ÷ t_fast, i.e. of the throughput ratio fast ÷ slow: the
    two runs of a round see about the same load from other users."""
    return statistics.median(e / p for e, p in zip(t_slow, t_fast))


def train_flops_per_image(model: torch.nn.Module, device: torch.device, n: int = 4,
                          size: tuple[int, int] = SQUARE) -> float:
    """FLOPs of one training step (forward + backward) per image, counted on n images of ``size``."""
    x = torch.randn(n, 3, *size, device=device)
    with FlopCounterMode(display=False) as counter:
        _, logits = model(x)
        F.cross_entropy(logits, torch.zeros(n, dtype=torch.long, device=device)).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / n


def embed_flops_per_image(model: torch.nn.Module, device: torch.device, n: int = 4) -> float:
    x = torch.randn(n, 3, 128, 128, device=device)
    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.embed(x)
    model.train()
    return counter.get_total_flops() / n


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 8,
                  dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of an n×n matmul in ``dtype``, best of ``reps`` (the attainable peak on a shared machine)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    times = [_time(lambda: a @ b, device) for _ in range(reps)]
    return 2 * n**3 / min(times) / 1e9


def _training_pair(device: torch.device, iters: int, reps: int, amp: bool) -> tuple[Callable, Callable, dict]:
    """(end to end, pure compute) step functions of one precision, warmed up, and fixed facts."""
    seed_everything(0)
    model = build_model("resnet18", NUM_IDS, "reid")
    data = fake_idloss_set(BATCH * iters, device)
    cfg = TrainConfig.handout_id(batch_size=BATCH, epochs=reps + 2, max_iters_per_epoch=iters, amp=amp)
    run = build_run(model, cfg, data)
    x = run.recipe.images(torch.arange(BATCH))  # [64, 3, 128, 128] float32 channels_last, made in advance
    ids = data.ids[:BATCH].to(run.device)

    def pure() -> None:
        for _ in range(iters):
            _, logits = run.forward(x)
            _step(run, F.cross_entropy(logits, ids))

    epoch = iter(range(10**6))
    train_epoch(run, next(epoch))  # warm-up (allocator, oneDNN/cuDNN kernel choice)
    pure()
    idx = torch.randperm(len(data.ids))[:BATCH]
    facts = {"fetch_ms": 1e3 * statistics.median(_time(lambda: run.recipe.images(idx), device) for _ in range(20)),
             "fetch_plain_ms": 1e3 * statistics.median(_time(lambda: data.cache.batch(idx).contiguous(
                 memory_format=torch.channels_last), device) for _ in range(20)),
             "train_flops_per_img": train_flops_per_image(run.model, run.device)}
    return (lambda: train_epoch(run, next(epoch))), pure, facts


def _step(run, loss: torch.Tensor) -> None:
    """The optimiser step of train_epoch, without its data path: the "pure compute" side."""
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()


def _summary(prefix: str, n: int, t_e2e: list[float], t_pure: list[float]) -> dict[str, float]:
    # end-to-end img/s ÷ pure img/s = pure time ÷ end-to-end time, round by round
    return {f"{prefix}_ratio": paired_ratio(t_pure, t_e2e),
            f"{prefix}_e2e_ips": n / statistics.median(t_e2e), f"{prefix}_pure_ips": n / statistics.median(t_pure),
            f"{prefix}_e2e_best_ips": n / min(t_e2e), f"{prefix}_pure_best_ips": n / min(t_pure)}


def bench_training(device: torch.device, iters: int, reps: int) -> dict[str, float]:
    """img/s of train_epoch (the real loop) and of the bare step on a ready batch, float32
    ("train_*") and bfloat16 autocast ("train16_*"), plus bfloat16 ÷ float32 end to end."""
    e2e32, pure32, facts = _training_pair(device, iters, reps, amp=False)
    e2e16, pure16, _ = _training_pair(device, iters, reps, amp=True)
    t = _alternate([e2e32, pure32, e2e16, pure16], reps, device)
    n = BATCH * iters
    return {**facts, **_summary("train", n, t[0], t[1]), **_summary("train16", n, t[2], t[3]),
            "train_bf16_speedup": paired_ratio(t[0], t[2])}


def _strong_pair(device: torch.device, iters: int, reps: int, size: tuple[int, int],
                 pk: tuple[int, int] = (16, 4)) -> tuple[Callable, Callable, float]:
    """(end to end, pure compute) step functions of the stronger recipe at ``size`` (batches of P×K = ``pk``
    images, the preset's 16×4 by default), warmed up, and the FLOPs of one training step per image."""
    seed_everything(0)
    cfg = TrainConfig.strong(epochs=reps + 2, max_iters_per_epoch=iters, input_size=size, p=pk[0], k=pk[1])
    data = fake_idloss_set(cfg.p * cfg.k * iters, device, size=size, per_id=cfg.k)  # `iters` P×K batches
    model = build_model("resnet18", data.num_ids, head="bnneck", input_size=size)
    run = build_run(model, cfg, data)
    idx = run.recipe.batches()[0]
    x = run.recipe.images(idx)  # [64, 3, H, W] float32 channels_last, made in advance
    ids = run.recipe.ids[idx.to(run.device)]

    def pure() -> None:
        for _ in range(iters):
            feats, logits = run.forward(x)
            _step(run, id_loss(logits, ids, cfg.label_smoothing) + batch_hard_triplet_loss(feats, ids, cfg.margin))

    epoch = iter(range(10**6))
    train_epoch(run, next(epoch))  # warm-up (allocator, oneDNN/cuDNN kernel choice)
    pure()
    return (lambda: train_epoch(run, next(epoch))), pure, train_flops_per_image(run.model, run.device, size=size)


def bench_shapes(device: torch.device, iters: int, reps: int) -> dict[str, float | str]:
    """img/s of the stronger recipe at 128×128 ("sq_*") and 128×64 ("person_*"), end to end
    and pure compute, alternated; "shape_speedup": 128×64 ÷ 128×128 end to end (median of
    rounds), "shape_pure_speedup" the same for pure compute, "shape_flops_ratio" from the FLOPs."""
    e2e_sq, pure_sq, flops_sq = _strong_pair(device, iters, reps, SQUARE)
    e2e_p, pure_p, flops_p = _strong_pair(device, iters, reps, PERSON)
    load = os.getloadavg()[0]
    t = _alternate([e2e_sq, pure_sq, e2e_p, pure_p], reps, device)
    amp = resolve_amp(device, TrainConfig.strong().amp)
    n = BATCH * iters
    return {**_summary("sq", n, t[0], t[1]), **_summary("person", n, t[2], t[3]),
            "shape_speedup": paired_ratio(t[0], t[2]), "shape_pure_speedup": paired_ratio(t[1], t[3]),
            "shape_flops_ratio": flops_sq / flops_p, "sq_flops_per_img": flops_sq, "person_flops_per_img": flops_p,
            "shape_precision": "float32" if amp is None else f"{str(amp).removeprefix('torch.')} autocast",
            "shape_rounds": reps, "shape_load": load, "shape_threads": torch.get_num_threads()}


def shape_markdown(r: dict) -> str:
    """Markdown table rows of :func:`bench_shapes` (section 1 of BENCHMARKS.md)."""
    prec = r["shape_precision"]
    rows = [f"| training, stronger recipe (P×K 16×4, BNNeckNet), {prec}, {h}×{w} {what} (img/s, median of "
            f"{r['shape_rounds']}) | {r[f'{k}_e2e_ips']:.1f} | {r[f'{k}_pure_ips']:.1f} | **{r[f'{k}_ratio']:.3f}** | "
            f"{r[f'{k}_e2e_ips'] * r[f'{k}_flops_per_img'] / 1e9:.0f} ({r[f'{k}_flops_per_img'] / 1e9:.2f} GFLOP "
            f"a training image) |"
            for k, (h, w), what in (("sq", SQUARE, "(C2's padded square)"), ("person", PERSON, "(the person, unpadded)"))]
    rows.append(f"| training, stronger recipe: 128×64 ÷ 128×128, end to end (pure compute; FLOPs) | "
                f"**{r['shape_speedup']:.2f}×** ({r['shape_pure_speedup']:.2f}×; {r['shape_flops_ratio']:.2f}×) | | | "
                f"{r['shape_threads']} torch threads, load average {r['shape_load']:.1f} |")
    return "\n".join(rows)


def bench_shape_speeds(device: torch.device, shapes: list[tuple[int, int]], iters: int, reps: int,
                       base_epochs: int = 18, pk: tuple[int, int] = (16, 4)) -> list[dict]:
    """End-to-end training speed of the stronger recipe at each of ``shapes`` relative to C2's
    128×128 (the runs alternated round after round; median over rounds of the paired ratio), its
    FLOPs per image, and the epochs that take about the wall time of ``base_epochs`` at 128×128
    (the schedules of an equal-time comparison, BENCHMARKS.md section 5)."""
    sizes = [SQUARE] + [s for s in shapes if s != SQUARE]
    pairs = [_strong_pair(device, iters, reps, size, pk) for size in sizes]
    t = _alternate([e2e for e2e, _, _ in pairs], reps, device)
    speeds = [paired_ratio(t[0], ts) for ts in t]
    return [{"shape": size, "speed": speed, "gflops": flops / 1e9, "epochs": int(base_epochs * speed)}
            for size, speed, (_, _, flops) in zip(sizes, speeds, pairs)]


def bench_extraction(device: torch.device, n: int, reps: int, batch: int = BATCH) -> dict[str, float]:
    """img/s of extract_features over a float16 cache and of model.embed on ready batches,
    float32 ("extract_*") and bfloat16 autocast ("extract16_*")."""
    seed_everything(0)
    model = build_model("resnet18", NUM_IDS, "reid").to(device, memory_format=torch.channels_last).eval()
    cache = fake_idloss_set(n, device).cache
    ready = [cache.batch(torch.arange(s, min(s + batch, n))) for s in range(0, n, batch)]  # float32

    def pair(dtype: torch.dtype | None) -> tuple[Callable, Callable]:
        def pure() -> None:
            with torch.inference_mode(), torch.autocast(device.type, dtype=dtype or torch.bfloat16,
                                                        enabled=dtype is not None):
                for x in ready:
                    model.embed(x)

        def e2e() -> None:
            extract_features(model, cache, batch_size=batch, device=device, amp_dtype=dtype)

        e2e(), pure()
        return e2e, pure

    t = _alternate([*pair(None), *pair(torch.bfloat16)], reps, device)
    return {**_summary("extract", n, t[0], t[1]), **_summary("extract16", n, t[2], t[3]),
            "extract_bf16_speedup": paired_ratio(t[0], t[2]),
            "embed_flops_per_img": embed_flops_per_image(model, device)}


def main(quick: bool = False, shape_only: bool = False) -> dict[str, float | str]:
    """Run the benchmarks (only the input-shape one with ``shape_only``); print markdown rows;
    return the numbers."""
    device = pick_device()
    iters, reps, n_extract = (1, 2, BATCH) if quick else (1, 5, 2 * BATCH)
    res: dict[str, float | str] = {"device": str(device), "threads": torch.get_num_threads(),
                                   "cpu_bf16": cpu_has_bf16() if device.type == "cpu" else "n/a"}
    if shape_only:
        res.update(bench_shapes(device, 2 * iters, reps))
        print(shape_markdown(res))
        return res
    res["matmul_gflops"] = matmul_gflops(device)
    res["matmul16_gflops"] = matmul_gflops(device, dtype=torch.bfloat16)
    res.update(bench_training(device, iters, reps))
    res.update(bench_extraction(device, n=n_extract, reps=reps))
    res.update(bench_shapes(device, 2 * iters, reps))  # 2 P×K batches a timed run
    res["matmul_gflops_end"] = matmul_gflops(device)
    res["matmul16_gflops_end"] = matmul_gflops(device, dtype=torch.bfloat16)
    for key, flops in (("train", "train_flops_per_img"), ("extract", "embed_flops_per_img")):
        for p in ("", "16"):
            res[f"{key}{p}_gflops"] = res[f"{key}{p}_e2e_ips"] * res[flops] / 1e9
    print(markdown(res))
    return res


def markdown(r: dict) -> str:
    """Markdown table rows of the results of :func:`main`."""
    peak = {"": max(r["matmul_gflops"], r["matmul_gflops_end"]),
            "16": max(r["matmul16_gflops"], r["matmul16_gflops_end"])}
    rows = ["| measurement | end to end | pure compute | ratio (median of rounds) | GFLOP/s (% of matmul) |",
            "| --- | --- | --- | --- | --- |"]
    for key, what, flops in (("train", "training, id recipe", "train_flops_per_img"),
                             ("extract", "feature extraction", "embed_flops_per_img")):
        for p, prec in (("", "float32"), ("16", "bfloat16 autocast")):
            k = f"{key}{p}"
            rows += [
                f"| {what}, batch {BATCH}, {prec} (img/s, median) | {r[f'{k}_e2e_ips']:.1f} | "
                f"{r[f'{k}_pure_ips']:.1f} | **{r[f'{k}_ratio']:.3f}** | {r[f'{k}_gflops']:.0f} "
                f"({100 * r[f'{k}_gflops'] / peak[p]:.0f} % of the {prec.split()[0]} matmul) |",
                f"| {what}, {prec} (img/s, best run) | {r[f'{k}_e2e_best_ips']:.1f} | {r[f'{k}_pure_best_ips']:.1f} | "
                f"{r[f'{k}_e2e_best_ips'] / r[f'{k}_pure_best_ips']:.3f} | "
                f"{r[f'{k}_e2e_best_ips'] * r[flops] / 1e9:.0f} |"]
        rows.append(f"| {what}: bfloat16 ÷ float32, end to end | **{r[f'{key}_bf16_speedup']:.2f}×** | | | |")
    rows.append(shape_markdown(r))
    rows += [
        f"| matmul 2048² (GFLOP/s, best of 8, at start / end): float32 | {r['matmul_gflops']:.0f} / "
        f"{r['matmul_gflops_end']:.0f} | | | |",
        f"| matmul 2048² (GFLOP/s, best of 8, at start / end): bfloat16 | {r['matmul16_gflops']:.0f} / "
        f"{r['matmul16_gflops_end']:.0f} | | | |",
        f"| model FLOPs per image: train step / embed | {r['train_flops_per_img'] / 1e9:.2f} G / "
        f"{r['embed_flops_per_img'] / 1e9:.2f} G | | | |",
        f"| data path per batch: cache rows → float32 channels_last, with the ID preset's flips and shifts (ms) | {r['fetch_ms']:.1f} "
        f"(via cache.batch + copy: {r['fetch_plain_ms']:.1f}) | | "
        f"{r['fetch_ms'] / (1e3 * BATCH / r['train16_pure_ips']) * 100:.2f} % of a bfloat16 step | |",
        f"| device | {r['device']}, {r['threads']} threads, bfloat16 in hardware: {r['cpu_bf16']} | | | |",
    ]
    return "\n".join(rows)


def bench_recipes(device: torch.device, precision: str, steps: int = 3, warm: int = 1) -> list[dict]:
    """Training steps of each preset (the ID model, the triplet model, the stronger recipe at its CPU or GPU
    shape), end to end (``train_step`` on the epoch's plan over a float16 cache), in ``precision``
    ("float32", "bfloat16" or "float16"): seconds a step (median of ``steps`` after ``warm``) and images/s."""
    from reid.budget import default_input_size  # noqa: PLC0415
    from reid.recipes import train_step  # noqa: PLC0415

    out = []
    for name, preset in (("id", TrainConfig.handout_id), ("triplet", TrainConfig.handout_triplet),
                         ("strong", TrainConfig.strong)):
        size = default_input_size(name, device)
        seed_everything(0)
        cfg = preset(epochs=2, amp=precision, input_size=size)
        per = 3 * cfg.batch_size if name == "triplet" else (cfg.p * cfg.k if name == "strong" else cfg.batch_size)
        n = per * (warm + steps) // (3 if name == "triplet" else 1)
        data = fake_idloss_set(max(n, 64), device, size=size, per_id=cfg.k)
        if name == "triplet":   # the listed rows: image i, a same-id image, another id's
            data.triplets = torch.stack([torch.arange(len(data.ids)), torch.arange(len(data.ids)).roll(1),
                                         torch.arange(len(data.ids)).roll(7)], dim=1)
        model = build_model("resnet18", data.num_ids, head="bnneck" if name == "strong" else "reid", input_size=size)
        run = build_run(model, cfg, data)
        plan = run.recipe.plan(warm + steps)
        for i in range(warm):
            train_step(run, plan, i)
        times = [_time(lambda i=i: train_step(run, plan, i), device) for i in range(warm, warm + steps)]
        step = statistics.median(times)
        images = plan.rows.shape[1] * (3 if name == "triplet" else 1)
        out.append({"recipe": name, "input": list(size), "images_a_step": images, "seconds_a_step": round(step, 3),
                    "images_per_s": round(images / step, 1), "precision": run.precision.describe()})
    return out


def cli(argv: list[str] | None = None) -> int:
    """The command line (``python -m bench.bench_train ...``); returns the exit status. ``--threads`` sets
    torch's threads for this call only."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    parser.add_argument("--shape-only", action="store_true",
                        help="only the stronger recipe at 128x64 against 128x128")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's); 1 is steadier when others load the CPU")
    parser.add_argument("--shapes", default=None, help="e.g. 128x64,144x72: only their speed against 128x128")
    parser.add_argument("--base-epochs", type=int, default=18,
                        help="with --shapes: the 128x128 schedule the equal-time epochs are scaled from")
    parser.add_argument("--pk", default="16x4", help="with --shapes: P×K of a batch (the preset's 16x4; smaller "
                                                       "for a check that the tool runs)")
    parser.add_argument("--recipes", default=None, metavar="PRECISION",
                        help="only a training step of each preset in float32, bfloat16 or float16, its images/s "
                             "(a JSON naming the machine goes to --out)")
    parser.add_argument("--out", type=Path, default=None, help="with --recipes: where to write the JSON")
    parser.add_argument("--steps", type=int, default=3, help="with --recipes: steps timed a recipe")
    args = parser.parse_args(argv)
    pk = tuple(int(v) for v in args.pk.lower().split("x"))
    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        if args.recipes:
            from reid.device import machine_line  # noqa: PLC0415
            rows = bench_recipes(pick_device(), args.recipes, steps=args.steps)
            doc = {"machine": machine_line(), "threads": torch.get_num_threads(), "recipes": rows,
                   "command": "python -m bench.bench_train --recipes " + args.recipes}
            for r in rows:
                print(f"{r['recipe']}: {r['images_per_s']} img/s ({r['seconds_a_step']} s a step of "
                      f"{r['images_a_step']} images at {r['input'][0]}×{r['input'][1]}, {r['precision']})")
            print(doc["machine"])
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(doc, indent=1))
        elif args.shapes:
            try:  # each HxW read as `--set input_size=HxW` reads it
                shapes = [parse_setting(f"input_size={text}")[1] for text in args.shapes.split(",")]
            except SettingError as err:
                parser.error(f"--shapes: {err}")
            print("| input | training speed ÷ 128×128, end to end (median of rounds) | GFLOP a training image | "
                  f"epochs for the wall time of {args.base_epochs} at 128×128 |\n| --- | --- | --- | --- |")
            for r in bench_shape_speeds(pick_device(), shapes, 1 if args.quick else 3, 2 if args.quick else 5,
                                        args.base_epochs, pk):
                print(f"| {r['shape'][0]}×{r['shape'][1]} | {r['speed']:.2f}× | {r['gflops']:.2f} | {r['epochs']} |")
        else:
            main(args.quick, args.shape_only)
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(cli())
