"""Re-ranking on a real layout: every trained model with and without k-reciprocal re-ranking.

    python -m bench.rerank_market DATA_ROOT NAME=CHECKPOINT [NAME=CHECKPOINT ...] \
        --out results/rerank_market.json

Each CHECKPOINT is a ``last.pt`` written by ``train_model`` (``python -m bench.time_to_accuracy
... --checkpoint-dir DIR`` keeps one per run, outside git). Each model is measured as it was
validated (its recorded ``flip_test`` and ``metric``, at its recorded input size, with features in
the precision its validation used: float32, as every evaluation), on two
splits of the layout:

* val (``val/gt.csv``): plain, re-ranked with the defaults (k1=20, k2=6, λ=0.3), and re-ranked
  at every point of a small grid of (k1, k2, λ);
* test, scored against the layout's ``test_gt.csv`` (a built layout has one; the course's has
  not): plain, re-ranked with the defaults, and re-ranked with the grid point chosen on val.

The choice is made on val: the grid point with the highest mean val mAP over the models. Test
then checks it: it replaces the defaults only if it beats them by more than ``MARGIN`` (mean
mAP) on val and again on test. The JSON holds every number unrounded; ``bench.run_all`` turns it
into BENCHMARKS.md's re-ranking section.
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from reid.checkpoints import load_checkpoint
from reid.data import RetrievalDataset
from reid.device import pick_device
from reid.evaluate import Retrieval, retrieve
from reid.model import build_model
from reid.predict import labelled_test_split
from reid.train import TrainConfig

DEFAULTS = (20, 6, 0.3)
GRID = {"k1": (3, 5, 10, 15, 20, 30), "k2": (1, 3, 6), "lambda_value": (0.0, 0.1, 0.3, 0.5, 0.8)}
MARGIN = 0.005  # mean mAP a grid point must gain over the defaults, on val and on test, to replace them


def load_model(path: Path) -> tuple[torch.nn.Module, TrainConfig]:
    """The model a checkpoint holds, built at its recorded input size, in eval mode."""
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["cfg"])
    num_ids = state["model"]["classifier.weight"].shape[0]
    model = build_model("resnet18", num_ids, head="bnneck" if cfg.recipe == "strong" else "reid",
                        input_size=cfg.model_shape())
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def measure(r: Retrieval, params: tuple[int, int, float] | None) -> dict[str, float]:
    """Rank-1/5/10 and mAP of ``r``, re-ranked with ``params`` (k1, k2, λ) unless None; unrounded."""
    out = (r if params is None else r.rerank(*params)).metrics()
    return {k: out[k] for k in ("rank1", "rank5", "rank10", "mAP")}


def grid_key(params: tuple[int, int, float]) -> str:
    return ",".join(str(v) for v in params)


def choose(models: dict, margin: float = MARGIN) -> dict:
    """The grid point with the highest mean val mAP over ``models`` (each ``{"val": {"grid": {key:
    metrics}, "defaults": metrics}, "test": {"defaults": metrics, "chosen": metrics}}``; "test" may
    be missing), as (k1, k2, λ); the mean val mAP with it and with the defaults; and, once every
    model has its test numbers, the mean test mAP gain and whether it replaces the defaults (a gain
    above ``margin`` on val and on test)."""
    n = len(models)
    keys = next(iter(models.values()))["val"]["grid"]
    mean_map = {key: sum(m["val"]["grid"][key]["mAP"] for m in models.values()) / n for key in keys}
    best = max(mean_map, key=mean_map.get)
    out = {"params": tuple(type(d)(v) for d, v in zip(DEFAULTS, best.split(","))),
           "val_mean_mAP": {"chosen": mean_map[best],
                            "defaults": sum(m["val"]["defaults"]["mAP"] for m in models.values()) / n}}
    if all("chosen" in m.get("test", {}) for m in models.values()):
        gain = sum(m["test"]["chosen"]["mAP"] - m["test"]["defaults"]["mAP"] for m in models.values()) / n
        out["test_mean_mAP_gain"] = gain
        val_gain = out["val_mean_mAP"]["chosen"] - out["val_mean_mAP"]["defaults"]
        out["replace_defaults"] = val_gain > margin and gain > margin
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT")
    ap.add_argument("--out", type=Path, default=Path("results/rerank_market.json"))
    ap.add_argument("--device", default=None)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    device = pick_device(args.device)
    splits: dict[tuple, tuple[RetrievalDataset, RetrievalDataset]] = {}
    grid = list(itertools.product(GRID["k1"], GRID["k2"], GRID["lambda_value"]))
    models, tests = {}, {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"{spec!r}: expected NAME=CHECKPOINT")
        model, cfg = load_model(Path(path))
        model.to(device)
        kw = cfg.retrieval_options(device)
        size = cfg.model_shape()
        if size not in splits:
            val = RetrievalDataset(args.data_root, "val", device=device, image_size=cfg.image_size())
            splits[size] = (val, labelled_test_split(args.data_root, cfg.image_size(), device))
        val, test = splits[size]
        t0 = time.perf_counter()
        with torch.no_grad():
            rv, tests[name] = retrieve(model, val, **kw), retrieve(model, test, **kw)
        models[name] = {"checkpoint": str(path), "recipe": cfg.recipe, "input_size": list(size),
                        "precision": "float32",  # every evaluation (reid.device.EVAL_DTYPE)
                        "flip_test": cfg.flip_test, "metric": cfg.metric, "epochs": cfg.epochs,
                        "val": {"plain": measure(rv, None), "defaults": measure(rv, DEFAULTS),
                                "grid": {grid_key(params): measure(rv, params) for params in grid}}}
        print(f"{name}: measured in {time.perf_counter() - t0:.1f} s; val Rank-1 {models[name]['val']['plain']['rank1']:.3f} "
              f"plain, {models[name]['val']['defaults']['rank1']:.3f} re-ranked")
    best = choose(models)["params"]
    for name, m in models.items():
        m["test"] = {"plain": measure(tests[name], None), "defaults": measure(tests[name], DEFAULTS),
                     "chosen": measure(tests[name], best)}
    choice = choose(models)
    val, test = next(iter(splits.values()))
    sizes = {split: {"queries": len(ds.queries), "gallery": len(ds.gallery)} for split, ds in (("val", val), ("test", test))}
    result = {"data_root": str(args.data_root), "sizes": sizes, "grid": GRID, "defaults": list(DEFAULTS),
              "margin": MARGIN, "chosen_on_val": list(best), "val_mean_mAP": choice["val_mean_mAP"],
              "test_mean_mAP_gain": choice["test_mean_mAP_gain"], "replace_defaults": choice["replace_defaults"],
              "models": models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"chosen on val: k1={best[0]}, k2={best[1]}, λ={best[2]} (mean val mAP {choice['val_mean_mAP']['chosen']:.4f} "
          f"against {choice['val_mean_mAP']['defaults']:.4f} with the defaults; on test "
          f"{choice['test_mean_mAP_gain']:+.4f}); {'replaces' if choice['replace_defaults'] else 'keeps'} the defaults. "
          f"Written to {args.out}.")
    return result


if __name__ == "__main__":
    main()
