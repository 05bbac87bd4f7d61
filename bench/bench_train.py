"""Training and feature-extraction throughput: the real loop against pure compute, one process.

End to end = ``reid.train.train_epoch`` on the "id" recipe (cache → index batch → model →
CE → Adam step → LR schedule), batch 64, ModifiedResNet18 + ReIDNet at 128×128.
Pure compute = the same model, loss and step on a batch made in advance. The two are
run alternately, and the median (and best) of several runs is reported; the ratio
end-to-end img/s ÷ pure img/s (target ≥ 0.90) is the median over adjacent pairs of runs,
which share about the same load on a shared machine. The same for ``extract_features`` on a
cache against ``model.embed`` on ready tensors. Achieved GFLOP/s uses the FLOPs of one
step counted by ``torch.utils.flop_counter.FlopCounterMode``, next to a large fp32
matmul measured in the same run. The machine may be shared: ratios are what to read.

    python bench/bench_train.py [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reid.data import ImageCache  # noqa: E402
from reid.evaluate import extract_features  # noqa: E402
from reid.model import build_model  # noqa: E402
from reid.train import TrainConfig, build_run, pick_device, seed_everything, train_epoch  # noqa: E402

BATCH = 64
NUM_IDS = 230


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fake_idloss_set(n: int, device: torch.device, seed: int = 0) -> SimpleNamespace:
    """An IDLossDataset look-alike: float16 cache [n, 3, 128, 128] on ``device``, ids [n]."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, 128, 128, generator=g).to(torch.float16)
    cache = ImageCache([Path(f"fake/{i}.jpg") for i in range(n)], images=images.to(device))
    ids = torch.randint(NUM_IDS, (n,), generator=g)
    return SimpleNamespace(cache=cache, ids=ids, num_ids=NUM_IDS)


def _time(fn: Callable[[], object], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _alternate(a: Callable[[], object], b: Callable[[], object], reps: int,
               device: torch.device) -> tuple[list[float], list[float]]:
    """Run a, b, a, b, ... (reps each) so that load changes on a shared machine hit both."""
    ta, tb = [], []
    for _ in range(reps):
        ta.append(_time(a, device))
        tb.append(_time(b, device))
    return ta, tb


def paired_ratio(t_e2e: list[float], t_pure: list[float]) -> float:
    """Median over adjacent (end-to-end, pure) pairs of pure time ÷ end-to-end time, i.e. of
    the throughput ratio: the two runs of a pair see about the same load from other users."""
    return statistics.median(p / e for e, p in zip(t_e2e, t_pure))


def train_flops_per_image(model: torch.nn.Module, device: torch.device, n: int = 4) -> float:
    """FLOPs of one training step (forward + backward) per image, counted on n images."""
    x = torch.randn(n, 3, 128, 128, device=device)
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


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 8) -> float:
    """GFLOP/s of an n×n fp32 matmul, best of ``reps`` (the attainable peak on a shared machine)."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    times = [_time(lambda: a @ b, device) for _ in range(reps)]
    return 2 * n**3 / min(times) / 1e9


def bench_training(device: torch.device, iters: int, reps: int) -> dict[str, float]:
    """img/s of train_epoch (the real loop) and of the bare step on a ready batch."""
    seed_everything(0)
    model = build_model("resnet18", NUM_IDS, "reid")
    data = fake_idloss_set(BATCH * iters, device)
    cfg = TrainConfig.handout_id(batch_size=BATCH, epochs=reps + 1, max_iters_per_epoch=iters)
    run = build_run(model, cfg, data)
    x = run.recipe.images(torch.arange(BATCH))  # [64, 3, 128, 128] float32 channels_last, made in advance
    ids = data.ids[:BATCH].to(run.device)

    def pure() -> None:
        for _ in range(iters):
            _, logits = run.forward(x)
            loss = F.cross_entropy(logits, ids)
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()

    epoch = iter(range(10**6))
    train_epoch(run, next(epoch))  # warm-up (allocator, oneDNN/cuDNN kernel choice)
    t_e2e, t_pure = _alternate(lambda: train_epoch(run, next(epoch)), pure, reps, device)
    n = BATCH * iters
    idx = torch.randperm(len(data.ids))[:BATCH]
    fetch_ms = 1e3 * statistics.median(_time(lambda: run.recipe.images(idx), device) for _ in range(20))
    plain_ms = 1e3 * statistics.median(_time(lambda: data.cache.batch(idx).contiguous(
        memory_format=torch.channels_last), device) for _ in range(20))
    return {"fetch_ms": fetch_ms, "fetch_plain_ms": plain_ms, "train_ratio": paired_ratio(t_e2e, t_pure),
            "train_e2e_ips": n / statistics.median(t_e2e), "train_pure_ips": n / statistics.median(t_pure),
            "train_e2e_best_ips": n / min(t_e2e), "train_pure_best_ips": n / min(t_pure),
            "train_flops_per_img": train_flops_per_image(run.model, run.device)}


def bench_extraction(device: torch.device, n: int, reps: int, batch: int = BATCH) -> dict[str, float]:
    """img/s of extract_features over a float16 cache and of model.embed on ready batches."""
    seed_everything(0)
    model = build_model("resnet18", NUM_IDS, "reid").to(device, memory_format=torch.channels_last).eval()
    cache = fake_idloss_set(n, device).cache
    ready = [cache.batch(torch.arange(s, min(s + batch, n))) for s in range(0, n, batch)]  # float32

    def pure() -> None:
        with torch.inference_mode():
            for x in ready:
                model.embed(x)

    def e2e() -> None:
        extract_features(model, cache, batch_size=batch, device=device)

    e2e()
    t_e2e, t_pure = _alternate(e2e, pure, reps, device)
    return {"extract_ratio": paired_ratio(t_e2e, t_pure), "extract_e2e_ips": n / statistics.median(t_e2e), "extract_pure_ips": n / statistics.median(t_pure),
            "extract_e2e_best_ips": n / min(t_e2e), "extract_pure_best_ips": n / min(t_pure),
            "embed_flops_per_img": embed_flops_per_image(model, device)}


def main(quick: bool = False) -> dict[str, float | str]:
    """Run both benchmarks; print markdown rows; return the numbers."""
    device = pick_device()
    iters, reps, n_extract = (1, 2, BATCH) if quick else (1, 5, 2 * BATCH)
    res: dict[str, float | str] = {"device": str(device), "threads": torch.get_num_threads()}
    res["matmul_gflops"] = matmul_gflops(device)
    res.update(bench_training(device, iters, reps))
    res.update(bench_extraction(device, n=n_extract, reps=reps))
    res["matmul_gflops_end"] = matmul_gflops(device)
    res["train_gflops"] = res["train_e2e_ips"] * res["train_flops_per_img"] / 1e9
    res["extract_gflops"] = res["extract_e2e_ips"] * res["embed_flops_per_img"] / 1e9
    print(markdown(res))
    return res


def markdown(r: dict) -> str:
    """Markdown table rows of the results of :func:`main`."""
    peak = max(r["matmul_gflops"], r["matmul_gflops_end"])
    rows = [
        "| measurement | end to end | pure compute | ratio (median of pairs) | GFLOP/s (% of matmul) |",
        "| --- | --- | --- | --- | --- |",
        f"| training, id recipe, batch {BATCH} (img/s, median) | {r['train_e2e_ips']:.1f} | "
        f"{r['train_pure_ips']:.1f} | **{r['train_ratio']:.3f}** | {r['train_gflops']:.0f} "
        f"({100 * r['train_gflops'] / peak:.0f} %) |",
        f"| training (img/s, best run) | {r['train_e2e_best_ips']:.1f} | {r['train_pure_best_ips']:.1f} | "
        f"{r['train_e2e_best_ips'] / r['train_pure_best_ips']:.3f} | "
        f"{r['train_e2e_best_ips'] * r['train_flops_per_img'] / 1e9:.0f} |",
        f"| feature extraction, batch {BATCH} (img/s, median) | {r['extract_e2e_ips']:.1f} | "
        f"{r['extract_pure_ips']:.1f} | **{r['extract_ratio']:.3f}** | {r['extract_gflops']:.0f} "
        f"({100 * r['extract_gflops'] / peak:.0f} %) |",
        f"| feature extraction (img/s, best run) | {r['extract_e2e_best_ips']:.1f} | "
        f"{r['extract_pure_best_ips']:.1f} | {r['extract_e2e_best_ips'] / r['extract_pure_best_ips']:.3f} | "
        f"{r['extract_e2e_best_ips'] * r['embed_flops_per_img'] / 1e9:.0f} |",
        f"| fp32 matmul 2048² (GFLOP/s, best of 8, at start / end) | {peak:.0f} / {r['matmul_gflops_end']:.0f} | | | |",
        f"| model FLOPs per image: train step / embed | {r['train_flops_per_img'] / 1e9:.2f} G / "
        f"{r['embed_flops_per_img'] / 1e9:.2f} G | | | |",
        f"| data path per batch: cache rows → float32 channels_last (ms) | {r['fetch_ms']:.1f} "
        f"(via cache.batch + copy: {r['fetch_plain_ms']:.1f}) | | "
        f"{r['fetch_ms'] / (1e3 * BATCH / r['train_pure_ips']) * 100:.2f} % of a step | |",
        f"| device | {r['device']}, {r['threads']} threads | | | |",
    ]
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations and repeats")
    main(parser.parse_args().quick)
