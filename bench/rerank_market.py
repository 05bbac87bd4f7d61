"""Re-ranking on a real layout: every trained model with and without k-reciprocal re-ranking.

    python -m bench.rerank_market DATA_ROOT NAME=CHECKPOINT [NAME=CHECKPOINT ...] \
        --out results/rerank_market.json

Each CHECKPOINT is a ``last.pt`` written by ``train_model`` (``python -m bench.time_to_accuracy
... --checkpoint-dir DIR`` keeps one per run, outside git). Each model is measured as it was
validated (its recorded ``flip_test`` and ``metric``, at its recorded input size), on two
splits of the layout:

* val (``val/gt.csv``): plain, re-ranked with the defaults (k1=20, k2=6, λ=0.3), and re-ranked
  at every point of a small grid of (k1, k2, λ);
* test, scored against the layout's ``test_gt.csv`` (a built layout has one; the course's has
  not): plain, re-ranked with the defaults, and re-ranked with the grid point chosen on val.

The choice: the grid point with the highest mean val mAP over the models. It replaces the
defaults only if it beats them on val by more than ``MARGIN`` (mAP) and is not worse on test
(a split that played no part in choosing it). The JSON holds every number; ``bench.run_all``
turns it into BENCHMARKS.md's re-ranking section.
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
from reid.evaluate import Retrieval, retrieve
from reid.model import build_model
from reid.predict import _query_key
from reid.train import TrainConfig

DEFAULTS = (20, 6, 0.3)
GRID = {"k1": (5, 10, 15, 20, 30), "k2": (1, 3, 6), "lambda_value": (0.1, 0.3, 0.5, 0.8)}
MARGIN = 0.005  # val mAP a grid point must gain over the defaults before it replaces them


def load_model(path: Path) -> tuple[torch.nn.Module, TrainConfig]:
    """The model a checkpoint holds, built at its recorded input size, in eval mode."""
    state = load_checkpoint(path)
    cfg = TrainConfig.from_dict(state["cfg"])
    size = tuple(cfg.input_size) if cfg.input_size is not None else (128, 128)
    num_ids = state["model"]["classifier.weight"].shape[0]
    model = build_model("resnet18", num_ids, head="bnneck" if cfg.recipe == "strong" else "reid", input_size=size)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def test_ground_truth(root: Path, test: RetrievalDataset) -> torch.Tensor:
    """``[Q]`` gallery index of each test query (in ``test/pred.csv``'s order) from ``test_gt.csv``."""
    gt_csv = root / "test_gt.csv"
    if not gt_csv.is_file():
        raise FileNotFoundError(f"{gt_csv}: no test ground truth (only a built layout has one)")
    rows = [line.split(",") for line in gt_csv.read_text().splitlines()[1:] if line.strip()]
    gallery_of = {_query_key(q): int(Path(g).stem) for q, g in rows}
    missing = [q for q in test.query_paths if _query_key(q) not in gallery_of]
    if missing:
        raise ValueError(f"{gt_csv}: no ground truth for {len(missing)} test queries, e.g. {missing[0]}")
    return torch.tensor([gallery_of[_query_key(q)] for q in test.query_paths])


def measure(r: Retrieval, params: tuple[int, int, float] | None) -> dict[str, float]:
    out = (r if params is None else r.rerank(*params)).metrics()
    return {k: round(out[k], 4) for k in ("rank1", "rank5", "rank10", "mAP")}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("models", nargs="+", metavar="NAME=CHECKPOINT")
    ap.add_argument("--out", type=Path, default=Path("results/rerank_market.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    splits: dict[tuple, tuple[RetrievalDataset, RetrievalDataset]] = {}
    grid = list(itertools.product(GRID["k1"], GRID["k2"], GRID["lambda_value"]))
    models = {}
    for spec in args.models:
        name, _, path = spec.partition("=")
        if not path:
            ap.error(f"{spec!r}: expected NAME=CHECKPOINT")
        model, cfg = load_model(Path(path))
        size = tuple(cfg.input_size) if cfg.input_size is not None else (128, 128)
        if size not in splits:
            image_size = 128 if size == (128, 128) else size
            val = RetrievalDataset(args.data_root, "val", image_size=image_size)
            test = RetrievalDataset(args.data_root, "test", image_size=image_size)
            test.gt = test_ground_truth(args.data_root, test)
            splits[size] = (val, test)
        val, test = splits[size]
        t0 = time.perf_counter()
        with torch.no_grad():
            rv = retrieve(model, val, flip=cfg.flip_test, metric=cfg.metric)
            rt = retrieve(model, test, flip=cfg.flip_test, metric=cfg.metric)
        models[name] = {"checkpoint": str(path), "recipe": cfg.recipe, "input_size": list(size),
                        "flip_test": cfg.flip_test, "metric": cfg.metric, "epochs": cfg.epochs,
                        "val": {"plain": measure(rv, None), "defaults": measure(rv, DEFAULTS),
                                "grid": {f"{k1},{k2},{lam}": measure(rv, (k1, k2, lam)) for k1, k2, lam in grid}},
                        "_test": rt}
        print(f"{name}: measured in {time.perf_counter() - t0:.1f} s; val plain {models[name]['val']['plain']}, "
              f"re-ranked {models[name]['val']['defaults']}")
    mean_map = {key: sum(m["val"]["grid"][key]["mAP"] for m in models.values()) / len(models)
                for key in models[next(iter(models))]["val"]["grid"]}
    best_key = max(mean_map, key=mean_map.get)
    k1, k2, lam = best_key.split(",")
    best = (int(k1), int(k2), float(lam))
    default_key = ",".join(str(v) for v in DEFAULTS)
    for m in models.values():
        rt = m.pop("_test")
        m["test"] = {"plain": measure(rt, None), "defaults": measure(rt, DEFAULTS), "chosen": measure(rt, best)}
    test_gain = sum(m["test"]["chosen"]["mAP"] - m["test"]["defaults"]["mAP"] for m in models.values()) / len(models)
    replace = mean_map[best_key] - mean_map[default_key] > MARGIN and test_gain >= 0
    val, test = next(iter(splits.values()))
    sizes = {name: {"queries": len(ds.queries), "gallery": len(ds.gallery)} for name, ds in (("val", val), ("test", test))}
    result = {"data_root": str(args.data_root), "sizes": sizes, "grid": GRID, "defaults": list(DEFAULTS), "margin": MARGIN,
              "chosen_on_val": list(best), "val_mean_mAP": {"chosen": round(mean_map[best_key], 4),
                                                             "defaults": round(mean_map[default_key], 4)},
              "test_mean_mAP_gain": round(test_gain, 4), "replace_defaults": replace, "models": models}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"chosen on val: k1={best[0]}, k2={best[1]}, λ={best[2]} (mean val mAP {mean_map[best_key]:.4f} against "
          f"{mean_map[default_key]:.4f} with the defaults; test mAP {test_gain:+.4f}); "
          f"{'replaces' if replace else 'keeps'} the defaults. Written to {args.out}.")
    return result


if __name__ == "__main__":
    main()
