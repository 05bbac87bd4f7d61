"""What the notebook prints about trained models: a run's curve in words, model comparison, examples."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from torch import Tensor, nn

from .data import RetrievalDataset
from .evaluate import retrieval_metrics


def _clean(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None]


def describe_history(history: Any) -> str:
    """A few sentences on a History measured from its numbers (nothing here is typed in by hand)."""
    r1 = history.rank1
    if not r1 or all(v is None for v in r1):
        return "No completed epoch with validation."
    loss = _clean(history.iter_loss)
    vl = _clean(history.val_loss)
    best = max(range(len(r1)), key=lambda i: -1 if r1[i] is None else r1[i])
    head, tail = max(1, len(loss) // 10), max(1, len(loss) // 10)
    parts = [
        f"{history.recipe} recipe, {history.epochs_done} epoch(s), {sum(history.epoch_seconds) / 60:.1f} min of training"
        f"{' (interrupted)' if history.interrupted else ''}.",
        f"Training loss: {sum(loss[:head]) / head:.3f} over the first tenth of the iterations → "
        f"{sum(loss[-tail:]) / tail:.3f} over the last tenth.",
    ]
    if vl:
        low = min(range(len(vl)), key=vl.__getitem__)
        parts.append(f"Validation loss: {vl[0]:.3f} after epoch 1 → {vl[-1]:.3f} after epoch {len(vl)} "
                     f"(lowest {vl[low]:.3f} at epoch {low + 1}).")
    parts.append(f"Val Rank-1: {r1[0]:.3f} after epoch 1 → {r1[-1]:.3f} after the last epoch "
                 f"(best {r1[best]:.3f} at epoch {best + 1}); Rank-5 {history.rank5[-1]:.3f}, "
                 f"Rank-10 {history.rank10[-1]:.3f}, mAP {history.mAP[-1]:.3f} at the end.")
    return "\n".join(parts)


def evaluate_retrieval(model: nn.Module, dataset: RetrievalDataset, flip: bool = False,
                       metric: str = "euclidean") -> dict[str, float]:
    """Rank-1/5/10 (the assignment's protocol) and mAP/mINP (identity = gallery index) on a val set;
    ``flip``: each feature averaged with its mirror image's (see ``extract_features``);
    ``metric``: "euclidean" or "cosine"."""
    m = retrieval_metrics(model, dataset, flip=flip, metric=metric)
    return {"Rank-1": m["rank1"], "Rank-5": m["rank5"], "Rank-10": m["rank10"], "mAP": m["mAP"], "mINP": m["mINP"]}


def compare_models(models: Mapping[str, tuple[Any, ...]], dataset: RetrievalDataset) -> pd.DataFrame:
    """One row per model: val Rank-1/5/10, mAP, mINP measured now, plus epochs and training minutes.

    Args:
        models: {name: (model, history, cfg)}; each model is measured as its validation was,
            with ``cfg.flip_test`` and ``cfg.metric`` (a TrainConfig). {name: (model, history)}
            measures on the images as they are, Euclidean.
    """
    rows = {}
    for name, (model, history, *cfg) in models.items():
        how = {"flip": cfg[0].flip_test, "metric": cfg[0].metric} if cfg else {}
        row = evaluate_retrieval(model, dataset, **how)
        row["epochs"] = history.epochs_done
        row["train min"] = sum(history.epoch_seconds) / 60
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def pick_examples(ranks: Tensor, gt: Tensor, n_hits: int = 3, n_misses: int = 3) -> list[int]:
    """Query rows for a ranked-results figure: the first `n_hits` queries whose top-1 is right and
    the first `n_misses` whose top-1 is wrong (fewer when there are fewer), hits first.

    Args:
        ranks: `[Q, k]` gallery indices, nearest first;  gt: `[Q]` true gallery indices.
    """
    hit = ranks[:, 0] == gt.to(ranks.device)
    hits = torch.nonzero(hit).flatten()[:n_hits].tolist()
    misses = torch.nonzero(~hit).flatten()[:n_misses].tolist()
    return hits + misses


def save_results(path: str | Path, data: str, table: pd.DataFrame, runs: Mapping[str, tuple[Any, Any]],
                 extra: Mapping[str, Any] | None = None) -> Path:
    """Write a run's results as JSON (what answers.md quotes and its test checks).

    Args:
        path: the JSON file;  data: which data set (DataInfo.describe());
        table: compare_models' table;  runs: {name: (TrainConfig, History)};  extra: more fields.
    """
    path = Path(path)
    doc = {"data": data, "table": table.to_dict(orient="index"),
           "runs": {name: {"config": cfg.to_dict(), "history": hist.to_dict()} for name, (cfg, hist) in runs.items()},
           **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, path)
    return path
