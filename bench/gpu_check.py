"""The GPU check: what a student's GPU run does, measured on a lent GPU in under 8 minutes.

    python -m bench.gpu_check [OUT.json] [--model-seconds 75] [--cpu-dry-run]
    bench/gpu_check.sh                      # the same, writing $OUT/gpu_check.json (the device tool's folder)

Needs only torch and torchvision (and the project). Where no CUDA device exists it says so and writes
a JSON that says "skipped". On a GPU it records, writing the JSON after every stage:

* the device (name, compute capability), torch's version and the precision ``reid.device`` chooses;
* for the chosen precision and for the T4's forced float16 (float16 autocast + GradScaler + fused Adam;
  an H100 would otherwise only run bfloat16): images/s of a training step of each recipe at its input
  size, and the host syncs a step makes (``torch.cuda.set_sync_debug_mode``: warnings counted);
* the three models trained through the notebook's own functions (``plan_training``, ``train_model``,
  the GPU's step ceiling and the val curve, each stopped at ``--model-seconds`` of training if the
  curve has not stopped it) on the synthetic data from a tiny stand-in weights file (one short epoch
  of torchvision's ResNet-18 on other synthetic people): epochs, why each stopped, minutes, kept val
  Rank-1 / mAP and peak GPU memory;
* ``pred.csv`` filled by the better handout model, scored against the layout's ``test_gt.csv``.

``--cpu-dry-run`` runs every stage on the CPU on tiny data (the tests' check that the script works).
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch

from bench.standin_weights import imagenet_format, train_standin
from reid.budget import default_input_size, plan_training
from reid.build import build_synthetic, read_pool, write_synthetic_pool
from reid.config import TrainConfig
from reid.data import IDLossDataset, RetrievalDataset, TripletDataset
from reid.device import resolve_precision
from reid.model import build_model, load_imagenet_weights
from reid.predict import score_predictions, write_predictions
from reid.recipes import build_run, train_step
from reid.train import train_model

PRESETS = {"id": TrainConfig.handout_id, "triplet": TrainConfig.handout_triplet, "strong": TrainConfig.strong}
FULL = dict(counts=dict(train_ids=230, val_ids=49, test_ids=100, per_id=10), pool=(60, 8), steps=(3, 10))
DRY = dict(counts=dict(train_ids=8, val_ids=5, test_ids=5, per_id=4), pool=(10, 4), steps=(1, 2))


class Record:
    """The JSON written after every stage, so a run cut short still leaves what it measured."""

    def __init__(self, path: Path) -> None:
        self.path, self.data = path, {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def put(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.path.write_text(json.dumps(self.data, indent=1))
        print(f"{key}: {json.dumps(value)[:300]}", flush=True)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_speed(dataset: Any, num_ids: int, cfg: TrainConfig, device: torch.device, warm: int,
               timed: int) -> dict[str, float]:
    """Images/s of training steps of ``cfg``'s recipe (after ``warm`` steps), and the host syncs a step
    makes (CUDA's sync debug mode; None on a CPU)."""
    model = build_model("resnet18", num_ids, head="bnneck" if cfg.recipe == "strong" else "reid",
                        input_size=cfg.model_shape())
    run = build_run(model, cfg, dataset)
    plan = run.recipe.plan(warm + timed)
    for step in range(warm):
        train_step(run, plan, step)
    _sync(device)
    syncs = None
    if device.type == "cuda":
        torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            for step in range(warm, warm + timed):
                train_step(run, plan, step)
            _sync(device)
            seconds = time.perf_counter() - t0
        if device.type == "cuda":
            syncs = sum("synchroniz" in str(w.message) for w in caught) / timed
    finally:
        if device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
    images = plan.rows.shape[1] * (3 if cfg.recipe == "triplet" else 1) * timed
    return {"images_per_s": round(images / seconds, 1), "host_syncs_per_step": syncs,
            "precision": run.precision.describe()}


def make_data(tmp: Path, sizes: dict, device: torch.device) -> tuple[Path, Path]:
    """(the synthetic layout, a tiny stand-in weights file trained on other synthetic people)."""
    root = build_synthetic(tmp / "data", seed=0, **sizes["counts"])
    ids, per_id = sizes["pool"]
    pool = read_pool(write_synthetic_pool(tmp / "pool", identities=ids, per_id=per_id, seed=1))
    state, _ = train_standin([p.source for p in pool], [p.pid for p in pool], (64, 32), epochs=1, batch=32,
                             device=str(device))
    weights = tmp / "standin.pth"
    torch.save(imagenet_format(state), weights)
    return root, weights


def train_three(root: Path, weights: Path, device: torch.device, seconds: float, quick: bool) -> dict:
    """The notebook's three models from the stand-in, through plan_training and train_model; returns
    {name: facts} and fills pred.csv (from the handout model with the higher val Rank-1)."""
    out, models = {}, {}
    cut = dict(max_iters_per_epoch=2, p=4, k=2, batch_size=8) if quick else {}
    for name in ("id", "triplet", "strong"):
        shape = default_input_size(name, device)
        size = 128 if shape == (128, 128) else shape
        ids = IDLossDataset(root / "train_idloss.csv", root, device="cpu", image_size=size)
        train = TripletDataset(root / "train_random_triplet.csv", root, device="cpu", image_size=size) \
            if name == "triplet" else ids
        val = RetrievalDataset(root, "val", device=device, image_size=size)
        val_id = IDLossDataset(root / "val_idloss.csv", root, device=device, image_size=size)
        model = build_model("resnet18", ids.num_ids, head="bnneck" if name == "strong" else "reid", input_size=shape)
        report = load_imagenet_weights(model, weights, verbose=False)
        cfg, how = plan_training(PRESETS[name], train, device, report, quick=quick, time_budget_s=seconds,
                                 input_size=shape, **cut)
        t0 = time.perf_counter()
        h = train_model(model, cfg, train, val, val_id, progress=False)
        k = h.kept_epoch
        reason = h.stop_reason or ("the time cut of this check" if h.epochs_done < cfg.epochs else "the ceiling")
        out[name] = {"ceiling_epochs": cfg.epochs, "epochs": h.epochs_done, "stopped_by": reason,
                     "minutes": round((time.perf_counter() - t0) / 60, 2), "kept_epoch": k,
                     "kept_val_rank1": h.rank1[k - 1], "kept_val_mAP": h.mAP[k - 1],
                     "peak_gpu_memory_gb": round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
                     if device.type == "cuda" else None, "how": how}
        models[name] = (model, cfg, size)
    best = max(("id", "triplet"), key=lambda n: out[n]["kept_val_rank1"])
    model, cfg, size = models[best]
    test = RetrievalDataset(root, "test", device="cpu", image_size=size)
    written = write_predictions(model, root, dataset=test, **cfg.retrieval_options(device))
    out["pred.csv"] = {"model": best, **score_predictions(written, root / "test_gt.csv")}
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, nargs="?", default=Path("results/gpu/gpu_check.json"))
    ap.add_argument("--model-seconds", type=float, default=75.0, help="training time each model may take at most")
    ap.add_argument("--cpu-dry-run", action="store_true", help="every stage on the CPU, on tiny data")
    args = ap.parse_args(argv)
    record = Record(args.out)
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        record.put("skipped", "no CUDA device here: bench/gpu_check.py measures a GPU (--cpu-dry-run tries it on "
                              "the CPU)")
        return record.data
    device = torch.device("cpu" if args.cpu_dry_run else "cuda")
    sizes = DRY if args.cpu_dry_run else FULL
    t_start = time.perf_counter()
    chosen = resolve_precision(device, None)
    record.put("device", {"name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu (dry run)",
                          "capability": list(torch.cuda.get_device_capability(device)) if device.type == "cuda" else None,
                          "torch": torch.__version__, "precision_chosen": chosen.describe()})
    with tempfile.TemporaryDirectory() as tmp:
        root, weights = make_data(Path(tmp), sizes, device)
        record.put("data_minutes", round((time.perf_counter() - t_start) / 60, 2))
        for label, amp in (("chosen", None), ("float16_forced", "float16")):
            speeds = {}
            for name in ("id", "triplet", "strong"):
                shape = default_input_size(name, device)
                size = 128 if shape == (128, 128) else shape
                ids = IDLossDataset(root / "train_idloss.csv", root, device=device, image_size=size)
                ds = TripletDataset(root / "train_random_triplet.csv", root, device=device, image_size=size) \
                    if name == "triplet" else ids
                cfg = PRESETS[name](amp=amp, input_size=shape, epochs=2,
                                    **(dict(p=4, k=2, batch_size=8) if args.cpu_dry_run else {}))
                speeds[name] = {"input": list(shape), **step_speed(ds, ids.num_ids, cfg, device, *sizes["steps"])}
            record.put(f"step_speed_{label}", speeds)
        record.put("models", train_three(root, weights, device, args.model_seconds, args.cpu_dry_run))
    record.put("total_minutes", round((time.perf_counter() - t_start) / 60, 2))
    return record.data


if __name__ == "__main__":
    main()
