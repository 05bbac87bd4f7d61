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
from .evaluate import Retrieval, retrieve
from .schedule import CurveRule, follow_curve
from .text import plural, wrap

# The only place the code's metric names become table headers ("Rank-1", ...).  Tables and
# results/*.json written from them keep these headers, so older files read the same.
DISPLAY_NAMES = {"rank1": "Rank-1", "rank5": "Rank-5", "rank10": "Rank-10", "mAP": "mAP", "mINP": "mINP"}
FLIP_LABEL = "test-time flip"
RERANK_LABEL = "re-ranking"
# mINP is left out of the tables: with one gallery image per person (the assignment's val set)
# AP and INP of a query are both 1 / (rank of its match), so mINP equals mAP by construction.
TABLE_METRICS = ("rank1", "rank5", "rank10", "mAP")
KEPT_COLUMN = "epoch (kept on val mAP)"
"""The tables' column saying which epoch's weights were measured: "12 of 14"."""


def _clean(values: list[Any]) -> list[float]:
    return [float(v) for v in values if v is not None]


def describe_history(history: Any, rule: CurveRule = CurveRule()) -> str:
    """A few sentences on a History measured from its numbers (nothing here is typed in by hand): the
    training and validation losses, val Rank-1 from the first to the last epoch, the kept epoch (the
    first with the best val mAP, whose weights the model holds) and the computed verdict."""
    r1 = history.rank1
    if not r1 or all(v is None for v in r1):
        return "No completed epoch with validation."
    loss = _clean(history.iter_loss)
    vl = _clean(history.val_loss)
    best = max(range(len(r1)), key=lambda i: -1 if r1[i] is None else r1[i])
    head, tail = max(1, len(loss) // 10), max(1, len(loss) // 10)
    parts = [
        f"{history.recipe} recipe, {plural(history.epochs_done, 'epoch')}, {sum(history.epoch_seconds) / 60:.1f} min of training"
        f"{' (interrupted)' if history.interrupted else ''}.",
        f"Training loss: {sum(loss[:head]) / head:.3f} over the first tenth of the iterations → "
        f"{sum(loss[-tail:]) / tail:.3f} over the last tenth.",
    ]
    if vl:
        low = min(range(len(vl)), key=vl.__getitem__)
        parts.append(f"Validation loss: {vl[0]:.3f} after epoch 1 → {vl[-1]:.3f} after epoch {len(vl)} "
                     f"(lowest {vl[low]:.3f} at epoch {low + 1}).")
    parts.append(f"Val Rank-1: {r1[0]:.3f} after epoch 1 → {r1[-1]:.3f} after the last epoch "
                 f"(best {r1[best]:.3f} at epoch {best + 1}).")
    k = history.kept_epoch
    if k is not None and history.mAP and history.mAP[k - 1] is not None:
        parts.append(f"Kept: epoch {k} of {history.epochs_done}, the best val mAP ({history.mAP[k - 1]:.3f}); there "
                     f"Rank-1 {history.rank1[k - 1]:.3f}, Rank-5 {history.rank5[k - 1]:.3f}, Rank-10 "
                     f"{history.rank10[k - 1]:.3f}. The tables, figures and predictions below use this epoch.")
    parts.append(verdict(history, rule))
    return wrap("\n".join(parts))


def loss_trend(values: list[float], relative: float = 0.01) -> str:
    """``"still falling"`` when the last value is below the lowest before it by more than ``relative``
    of it (0.206 → 0.205 is not falling), else ``"no longer falling"``."""
    return "still falling" if values[-1] < min(values[:-1]) * (1 - relative) else "no longer falling"


def curve_verdict(history: Any, rule: CurveRule = CurveRule()) -> tuple[str, str]:
    """(state, words) of a run's val mAP curve, read by the rule that trains it (reid/schedule.py,
    :func:`follow_curve`: the training loop lowers the rate and stops by the same reading). state is
    "stopped", "rising", "levelled", "peaked" or "too short"."""
    p = follow_curve(history.mAP, rule)
    state = p.state(rule)
    if state == "too short":
        return state, "too few epochs to tell whether the val curve has levelled off"
    s, b, k = p.smoothed, p.best_epoch or 1, rule.smooth
    k = min(k, len(s))   # a run shorter than the smoothing window averages what it has
    mean = f"its {k}-epoch mean" if k > 1 else "it"
    if getattr(history, "stop_reason", None):
        return "stopped", f"val mAP {history.stop_reason} ({mean} best at epoch {b}: {s[b - 1]:.3f})"
    if state == "rising" and p.since_gain == 0:
        back = max(0, len(s) - 1 - rule.patience)
        return state, (f"val mAP was still rising at its last epoch: {mean} reached a new best, {s[-1]:.3f} "
                       f"({s[-1] - s[back]:+.3f} over the last {plural(len(s) - 1 - back, 'epoch')}); a longer run would "
                       "likely help")
    if state == "rising":
        return state, (f"val mAP had not levelled yet: {mean}'s last gain was {p.since_gain} epoch"
                       f"{'s' if p.since_gain > 1 else ''} before the end, fewer than the {rule.patience} the rule "
                       f"waits (best {s[b - 1]:.3f} at epoch {b})")
    if state == "peaked":
        return state, (f"val mAP peaked at epoch {b} ({mean}: {s[b - 1]:.3f}) and has fallen by "
                       f"{s[b - 1] - s[-1]:.3f} since: the model has started to overfit its training images")
    return state, (f"val mAP has levelled off: no gain above {rule.min_delta:g} in {mean} for the last "
                   f"{p.since_gain} epochs (best {s[b - 1]:.3f} at epoch {b})")


def verdict(history: Any, rule: CurveRule = CurveRule()) -> str:
    """One sentence on where a run stands, from its numbers: :func:`curve_verdict` of val mAP, and
    :func:`loss_trend` of the training and validation losses."""
    state, text = curve_verdict(history, rule)
    if state == "too short":
        return "Val curve: " + text[0].upper() + text[1:] + "."
    losses = [v for v in history.epoch_train_loss if v is not None]
    if len(losses) >= 2:
        text += (f"; the training loss is {loss_trend(losses)} ({losses[-2]:.3f} → {losses[-1]:.3f} over the "
                 f"last two epochs, {100 * (losses[-1] / losses[-2] - 1):+.1f} %; a fall under 1 % counts as not falling)")
    vl = [v for v in history.val_loss if v is not None]
    if len(vl) >= 2:
        text += f", the validation loss {loss_trend(vl)}"
    return "Val curve: " + text + "."


def display_metrics(metrics: Mapping[str, float], suffix: str = "") -> dict[str, float]:
    """``{"rank1": .., "mAP": ..}`` → ``{"Rank-1": .., "mAP": ..}`` (table headers), each header
    followed by ``suffix``; keys already in header form (older results) pass unchanged."""
    return {DISPLAY_NAMES.get(k, k) + suffix: v for k, v in metrics.items()}


def evaluate_retrieval(model: nn.Module, dataset: RetrievalDataset, flip: bool = False,
                       metric: str = "euclidean") -> dict[str, float]:
    """Kept for code written against earlier versions: ``retrieve(model, dataset, flip, metric)``'s
    metrics under the table headers {"Rank-1", "Rank-5", "Rank-10", "mAP", "mINP"}. New code:
    ``retrieve(...).metrics()`` (keys "rank1", ...)."""
    return display_metrics(retrieve(model, dataset, flip=flip, metric=metric).metrics())


def _measured(what: Any, history: Any, cfg: Any, dataset: RetrievalDataset | None) -> dict[str, Retrieval]:
    """{column label: Retrieval} of one compare_models entry; the first one (label "") is the
    headline."""
    if isinstance(what, Retrieval):
        return {"": what}
    if isinstance(what, Mapping):
        return dict(what)
    if isinstance(what, (tuple, list)):
        plain, flipped = what
        return {"": plain, FLIP_LABEL: flipped}
    flip, metric = (cfg.flip_test, cfg.metric) if cfg is not None else (False, "euclidean")
    last = getattr(history, "kept_retrieval", None)  # the model's last validation, if it was run now
    if isinstance(last, Retrieval) and last.flip == flip and last.metric == metric:
        return {"": last}
    if dataset is None:
        raise ValueError("compare_models: a model without a matching last validation needs the dataset")
    return {"": retrieve(what, dataset, flip=flip, metric=metric)}


def compare_models(models: Mapping[str, tuple[Any, ...]], dataset: RetrievalDataset | None = None,
                   metrics: tuple[str, ...] = TABLE_METRICS) -> pd.DataFrame:
    """One row per model: val Rank-1/5/10 and mAP (``metrics``), plus epochs and training minutes.

    Args:
        models: {name: (measured, history[, cfg])}. ``measured`` is what was computed: a
            :class:`Retrieval` (its metrics are the row's headline); a pair (plain Retrieval,
            Retrieval with test-time flip), which adds columns labelled "(beyond: test-time flip)";
            or a mapping {label: Retrieval} whose first entry (label "") is the headline and each
            other adds columns "(label)" (e.g. ``{"": plain, FLIP_LABEL: flipped,
            RERANK_LABEL: plain.rerank()}``). ``measured`` may also be a model: then the History's
            last validation is reused when it measured the model the way asked
            (``cfg.flip_test``, ``cfg.metric``; without cfg, the images as they are, Euclidean),
            else the model is measured now on ``dataset``.
        dataset: the val RetrievalDataset; needed only for models measured now.
        metrics: which of Retrieval.metrics()' keys become columns (mINP equals mAP here, see
            TABLE_METRICS).
    """
    rows = {}
    for name, (what, history, *cfg) in models.items():
        row: dict[str, float] = {}
        for label, retrieval in _measured(what, history, cfg[0] if cfg else None, dataset).items():
            values = {k: v for k, v in retrieval.metrics().items() if k in metrics}
            row.update(display_metrics(values, f" ({label})" if label else ""))
        row[KEPT_COLUMN] = f"{history.kept_epoch} of {history.epochs_done}"
        row["train min"] = round(sum(history.epoch_seconds) / 60, 1)   # minutes: one decimal
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def beyond_table(models: Mapping[str, Mapping[str, Retrieval]]) -> pd.DataFrame:
    """Beyond the handout, one row per model: Rank-1 and mAP as each model is validated ("as
    validated"), then with each labelled measurement of the same kept model ({label: Retrieval}: test-
    time flip, k-reciprocal re-ranking, …), two columns each. The headline table is compare_models'."""
    rows = {}
    for name, measured in models.items():
        row: dict[str, float] = {}
        for label, retrieval in measured.items():
            m = retrieval.metrics()
            row.update({f"Rank-1 ({label})": m["rank1"], f"mAP ({label})": m["mAP"]})
        rows[name] = row
    return pd.DataFrame.from_dict(rows, orient="index").round(3)


def describe_ranks(ranks: Tensor, gt: Tensor, rows: list[int], names: list[str] | None = None) -> str:
    """One line per shown query: where its match is in the ranking (from ``ranks`` [Q, k] and
    ``gt`` [Q]), e.g. "row 4 (query 17): match at rank 5 of the top 10"."""
    lines = []
    gt = gt.to(ranks.device)
    for shown, q in enumerate(rows, start=1):
        hit = (ranks[q] == gt[q]).nonzero().flatten()
        where = f"match at rank {int(hit[0]) + 1}" if len(hit) else f"match not in the top {ranks.shape[1]}"
        label = f" ({names[shown - 1]})" if names else ""
        lines.append(f"row {shown} (query {q}){label}: {where}")
    return "\n".join(lines)


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
