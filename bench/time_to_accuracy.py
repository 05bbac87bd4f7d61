"""Time to accuracy: train a preset under a time budget, val Rank-1 and mAP per epoch.

    python -m bench.time_to_accuracy DATA_ROOT --recipe id|triplet|strong --minutes 20 \
        --out runs/tta_<recipe>.json [--epochs N] [--set lr=1e-3 --set flip=true ...] [--seed 0] \
        [--device cuda] [--checkpoint-dir DIR] [--weights FILE.pth] [--test]

The model is ModifiedResNet18, ReIDNet for "id" and "triplet", BNNeckNet for "strong", from
random weights, or with ``--weights`` from a weights file in torchvision's format loaded
through C6 (``load_imagenet_weights``; e.g. the stand-in of ``bench.standin_weights``): the
preset is then the one for a pretrained start (``reid.config.PRETRAINED``), and the JSON records
the start (the file's SHA-256 and name). The preset (TrainConfig.handout_id / handout_triplet /
strong) runs with time_budget_s = minutes × 60: training stops after the epoch in which
the budget is passed, when the val curve stops it (the presets' curve schedule), or at the
preset's ceiling (``--epochs``). The model kept is the epoch with the best
val mAP (``History.kept_epoch``), as in the notebook. Minutes are wall time of the training
loop with its per-epoch validation (History.elapsed_seconds); decoding the images into
the cache happens before and is reported on its own line. ``--set FIELD=VALUE`` overrides
any other TrainConfig field; the JSON written holds the history and, under "config", every
setting of the run, and "precision" the one it trained in (reid.device.resolve_precision: float32,
bfloat16 or float16; evaluation is float32). ``--test`` then scores the kept epoch's model on the
layout's test split against its ``test_gt.csv`` (a layout built by make_data.py has one), as
validation scores val (its metric and test-time flip), and adds the numbers under "test" (with
"epoch", the kept epoch), and the last epoch's under "test_last" when it is another: a second,
larger split to judge a run by; ``--test-every-epoch`` also scores every epoch ("test_per_epoch",
with each query's rank, for paired comparisons of kept-epoch rules). The test split is read before
training (a layout without ground truth fails at once), the history is written before test is
scored, and an interrupted run is not scored.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from reid.data import IDLossDataset, RetrievalDataset, TripletDataset
from reid.device import pick_device, resolve_precision, seed_everything
from reid.evaluate import retrieve
from reid.checkpoints import load_checkpoint
from reid.config import start_of
from reid.model import build_model, load_imagenet_weights
from reid.predict import labelled_test_split
from reid.runs import PRESETS, SettingError, parse_setting
from reid.train import History, train_model


def load_data(root: Path, recipe: str, device: str, image_size: object = 128) -> tuple[object, object, object, int]:
    """(train set for the recipe, val RetrievalDataset, val IDLossDataset, number of train ids), their
    images at ``image_size`` (128: the handout's padded square; (H, W): the person at that shape)."""
    kw = dict(device=device, image_size=image_size)
    id_set = IDLossDataset(root / "train_idloss.csv", root, **kw)
    train = TripletDataset(root / "train_random_triplet.csv", root, **kw).label_from(id_set) \
        if recipe == "triplet" else id_set
    return train, RetrievalDataset(root, "val", **kw), IDLossDataset(root / "val_idloss.csv", root, **kw), id_set.num_ids


def score_test(model: torch.nn.Module, cfg: object, test: RetrievalDataset) -> dict[str, float]:
    """Rank-1/5/10 and mAP of ``model`` on ``test`` (``reid.predict.labelled_test_split``), ranked as
    validation ranks (``cfg``'s metric, flip_test and precision), with the number of queries and gallery
    images; unrounded."""
    with torch.no_grad():
        r = retrieve(model, test, **cfg.retrieval_options(pick_device(cfg.device)))
    m = r.metrics()
    return {**{k: m[k] for k in ("rank1", "rank5", "rank10", "mAP")},
            "queries": len(test.queries), "gallery": len(test.gallery)}


def _setting(text: str) -> tuple[str, object]:
    """argparse type for --set: :func:`reid.runs.parse_setting`, its error shown as the option's."""
    try:
        return parse_setting(text)
    except SettingError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def rank1_table(h: History) -> str:
    """Markdown rows: epoch, minutes, val Rank-1 / Rank-5 / mAP, val loss."""
    rows = ["| epoch | minutes | val Rank-1 | val Rank-5 | val mAP | val loss |", "| --- | --- | --- | --- | --- | --- |"]
    for e, (t, r1, r5, m, vl) in enumerate(zip(h.elapsed_seconds, h.rank1, h.rank5, h.mAP, h.val_loss), 1):
        vl_s = "" if vl is None else f"{vl:.4f}"
        rows.append(f"| {e} | {t / 60:.2f} | {r1:.3f} | {r5:.3f} | {m:.3f} | {vl_s} |")
    return "\n".join(rows)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--recipe", choices=sorted(PRESETS), default="id")
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--out", type=Path, default=None, help="History JSON (default runs/tta_<recipe>.json)")
    ap.add_argument("--epochs", type=int, default=None, help="override the preset's epochs (the ceiling)")
    ap.add_argument("--set", dest="settings", type=_setting, action="append", default=[],
                    metavar="FIELD=VALUE", help="override a TrainConfig field, e.g. lr=1e-3 or flip=true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default=None)
    ap.add_argument("--checkpoint-dir", type=Path, default=None,
                    help="checkpoint each epoch; resume if present (default: runs/tta/<name of --out>, started afresh)")
    ap.add_argument("--weights", type=Path, default=None,
                    help="start from this weights file (torchvision's ResNet-18 names), loaded through C6")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--test", action="store_true",
                    help="score the kept epoch's model (and the last one's) on the test split (the layout's test_gt.csv)")
    ap.add_argument("--test-every-epoch", action="store_true",
                    help="with --test: also score every epoch on test (Rank-1, mAP and each query's rank)")
    args = ap.parse_args(argv)
    if args.test and not (args.data_root / "test_gt.csv").is_file():
        ap.error(f"--test: {args.data_root / 'test_gt.csv'} does not exist (only a layout built by make_data.py has "
                 "test ground truth)")
    if args.test_every_epoch and not args.test:
        ap.error("--test-every-epoch needs --test")
    return args


def build(args: argparse.Namespace) -> tuple:
    """(model, cfg, train set, val set, val IDLossDataset, test split or None) for the arguments: the data
    decoded, the model built, the weights loaded through C6 and the start's preset with the overrides."""
    overrides = {"time_budget_s": args.minutes * 60, "seed": args.seed, "device": args.device}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    device = str(pick_device(args.device))
    recipe_cfg = PRESETS[args.recipe](**overrides, **dict(args.settings))
    t0 = time.perf_counter()
    train_set, val_set, val_idloss, num_ids = load_data(args.data_root, args.recipe, device, recipe_cfg.image_size())
    test_set = labelled_test_split(args.data_root, recipe_cfg.image_size(), device) if args.test else None
    print(f"Decoded the data into the {device} cache in {time.perf_counter() - t0:.1f} s "
          f"({num_ids} train ids, {len(val_set.queries)} val queries, {len(val_set.gallery)} val gallery).")
    seed_everything(args.seed)  # the weights' initialisation depends on the seed too
    model = build_model("resnet18", num_ids, head="bnneck" if args.recipe == "strong" else "reid",
                        input_size=recipe_cfg.model_shape())
    if args.weights is not None:
        report = load_imagenet_weights(model, args.weights)
        print(report.message)
        overrides.update(start_of(report))
    overrides.update(dict(args.settings))  # --set wins over the start's preset
    cfg = PRESETS[args.recipe](**overrides)
    print(f"Recipe {args.recipe}: {cfg}")
    return model, cfg, train_set, val_set, val_idloss, test_set


def score_test_after_each_epoch(cfg: object, test: RetrievalDataset, into: list) -> object:
    """An ``after_epoch`` hook for train_model: each epoch's test Rank-1/5/10, mAP and every query's rank
    of its match (for paired comparisons), appended to ``into``."""
    def hook(model: torch.nn.Module, history: History) -> None:
        with torch.no_grad():
            r = retrieve(model, test, **cfg.retrieval_options(pick_device(cfg.device)))
        m = r.metrics()
        into.append({**{k: round(m[k], 6) for k in ("rank1", "rank5", "rank10", "mAP")},
                     "match_rank": r.match_ranks().tolist()})
    return hook


def record_run(out: Path, folder: Path, model: torch.nn.Module, cfg: object, history: History,
               test_set: RetrievalDataset | None, per_epoch: list) -> dict:
    """Write the run's JSON (history, settings, precision), then, with a test split, the kept and last
    epochs' test scores and every epoch's when they were measured."""
    out.parent.mkdir(parents=True, exist_ok=True)
    precision = resolve_precision(pick_device(cfg.device), cfg.amp).name
    record = {"config": cfg.to_dict(), "precision": precision, "kept_epoch": history.kept_epoch, **history.to_dict()}
    if per_epoch:
        record["test_per_epoch"] = per_epoch
    out.write_text(json.dumps(record, indent=1))  # the run is kept even if scoring test fails
    if test_set is not None and history.interrupted:
        print("Training was interrupted: the test split is not scored.")
    elif test_set is not None:
        record["test"] = {"epoch": history.kept_epoch, **score_test(model, cfg, test_set)}
        if history.kept_epoch != history.epochs_done:  # the last epoch too, from last.pt
            model.load_state_dict(load_checkpoint(folder / "last.pt")["model"])
            record["test_last"] = {"epoch": history.epochs_done, **score_test(model, cfg, test_set)}
        out.write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> History:
    args = parse_args(argv)
    model, cfg, train_set, val_set, val_idloss, test_set = build(args)
    out = args.out if args.out is not None else Path("runs") / f"tta_{args.recipe}.json"
    folder = args.checkpoint_dir or Path("runs") / "tta" / out.stem
    if args.checkpoint_dir is None:  # a folder of its own, started afresh
        for name in ("last.pt", "best.pt"):
            (folder / name).unlink(missing_ok=True)
    per_epoch: list = []
    hook = score_test_after_each_epoch(cfg, test_set, per_epoch) if args.test_every_epoch else None
    history = train_model(model, cfg, train_set, val_set, val_idloss, checkpoint_dir=folder, resume=True,
                          progress=not args.quiet, after_epoch=hook)
    record = record_run(out, folder, model, cfg, history, test_set, per_epoch)
    print(rank1_table(history))
    if "test" in record:
        t = record["test"]
        print(f"Test (kept epoch {t['epoch']}, {t['queries']} queries, {t['gallery']} gallery images): "
              f"Rank-1 {t['rank1']:.3f}, mAP {t['mAP']:.3f}.")
    kept = history.kept_epoch
    if kept is not None:
        print(f"Kept epoch {kept} (best val mAP {history.mAP[kept - 1]:.3f}, Rank-1 {history.rank1[kept - 1]:.3f}; "
              f"{history.elapsed_seconds[kept - 1] / 60:.2f} min). History saved to {out}.")
    return history


if __name__ == "__main__":
    main()
