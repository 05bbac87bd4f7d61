"""Validation after an epoch: one pass over the val images against two (Rank-k and the val loss apart).

    python -m bench.bench_val DATA_ROOT [--repeats 5]

Times ``evaluate_val`` (one forward pass per val image: the val loss and Rank-k share it)
against the same numbers computed the earlier way (``retrieve`` embeds queries and
gallery, then ``validation_loss`` passes the val_idloss images again), side by side in one
process, on the handout's ResNet-18 + ID head and on the stronger recipe's BNNeck head, both
in float32 (every evaluation's precision, ``reid.device.EVAL_DTYPE``), without test-time flip. Prints the medians and their ratio, and checks that both
ways give the same numbers.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from reid.data import IDLossDataset, RetrievalDataset
from reid.model import build_model
from reid import train as T  # noqa: E402
from reid.evaluate import retrieve  # noqa: E402


def two_passes(run: T.TrainRun, val_set, val_id, triplets) -> dict:
    m = retrieve(run.model, val_set, batch_size=run.cfg.eval_batch_size, device=run.device).metrics()
    loss = T.validation_loss(run.model, val_id, triplets, run.cfg.eval_batch_size, run.device)
    return {**{k: m[k] for k in ("rank1", "rank5", "rank10", "mAP")}, "val_loss": loss}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data_root", type=Path)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    root = args.data_root
    train_id = IDLossDataset(root / "train_idloss.csv", root)
    val_set, val_id = RetrievalDataset(root, "val"), IDLossDataset(root / "val_idloss.csv", root)
    triplets = T.random_triplets(val_id.ids, torch.Generator().manual_seed(T.VAL_TRIPLET_SEED))
    print(f"{len(val_set.queries)} queries + {len(val_set.gallery)} gallery images; val_idloss {len(val_id.paths)} images")
    for head, recipe in (("reid", "id"), ("bnneck", "strong")):
        torch.manual_seed(0)
        model = build_model("resnet18", train_id.num_ids, head=head)
        run = T.build_run(model, T.TrainConfig(recipe=recipe, device="cpu"), train_id)
        one, two = [], []
        for _ in range(args.repeats):  # alternate, so drifting machine load hits both alike
            t = time.perf_counter(); a = T.evaluate_val(run, val_set, val_id, triplets); one.append(time.perf_counter() - t)
            t = time.perf_counter(); b = two_passes(run, val_set, val_id, triplets); two.append(time.perf_counter() - t)
        same = all(abs(a[k] - b[k]) < 1e-6 * max(1.0, abs(b[k])) for k in b)
        print(f"{head} (float32, as every evaluation): one pass {statistics.median(one):.2f} s, two passes {statistics.median(two):.2f} s "
              f"(medians of {args.repeats}); ratio {statistics.median(two) / statistics.median(one):.2f}×; "
              f"same numbers: {same}")


if __name__ == "__main__":
    main()
