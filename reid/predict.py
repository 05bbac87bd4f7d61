"""Test predictions: fill `test/pred.csv` with each query's top-1 gallery image, and score it.

`write_predictions` keeps the query column and its order untouched, writes the gallery
column in the same path form as `val/gt.csv` uses (`test/gallery/17.jpg`, or with the data
folder's name in front, or bare), and replaces the file atomically (temporary file, then
rename).  A read-only `pred.csv` is left as it is: the predictions go beside it and the
error says where.
"""
from __future__ import annotations

import csv
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence, Union

import torch
from torch import nn

from .data import RetrievalDataset, read_csv
from .evaluate import Retrieval, retrieve


class PredictionWriteError(PermissionError):
    """pred.csv could not be replaced; `saved_to` holds the predictions instead."""

    def __init__(self, message: str, saved_to: Path) -> None:
        super().__init__(message)
        self.saved_to = saved_to


Ranker = Union[nn.Module, Retrieval]  # a model to measure now, or what was already measured


def _as_retrieval(source: Ranker, dataset: RetrievalDataset | None, batch_size: int, flip: bool,
                  metric: str) -> Retrieval:
    """``source`` itself when it is a Retrieval, else ``retrieve(source, dataset, ...)``."""
    if isinstance(source, Retrieval):
        return source
    if dataset is None:
        raise ValueError("rank_gallery(model, ...) needs the RetrievalDataset to measure the model on")
    return retrieve(source, dataset, flip=flip, metric=metric, batch_size=batch_size)


def rank_gallery(source: Ranker, dataset: RetrievalDataset | None = None, topk: int = 10,
                 batch_size: int = 256, flip: bool = False,
                 metric: str = "euclidean") -> tuple[torch.Tensor, torch.Tensor]:
    """Distances and ranked gallery indices for every query.

    Args:
        source: a :class:`Retrieval` already measured (nothing is recomputed), or a model,
            measured here on ``dataset`` with ``flip`` / ``metric`` (see ``retrieve``).
        dataset: the RetrievalDataset; needed only with a model.
        topk: how many gallery indices per query.

    Returns:
        dist `[Q, G]` (float32) and ranks `[Q, topk]` (gallery indices, nearest first; ties go
        to the lower gallery index).
    """
    retrieval = _as_retrieval(source, dataset, batch_size, flip, metric)
    return retrieval.dist, retrieval.ranked(topk)


def gallery_cell_template(root: Path, split: str = "test") -> str:
    """A format string for the gallery column, in the form val/gt.csv uses (`{k}` = index, `{ext}`).

    `val/gallery/3.jpg` → `test/gallery/{k}{ext}`; `pa2_data/val/gallery/3.jpg` →
    `pa2_data/test/gallery/{k}{ext}`; `3.jpg` → `{k}{ext}`; absolute paths likewise.
    """
    gt = root / "val" / "gt.csv"
    cell = read_csv(gt, ("query", "gallery")).column("gallery")[0].replace("\\", "/") if gt.is_file() \
        else "val/gallery/0.jpg"
    head, _, _ = cell.rpartition("/")
    head = re.sub(r"(^|/)val(/gallery)$", rf"\1{split}\2", head) if head else ""
    return (head + "/" if head else "") + "{k}{ext}"


def _write_rows(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a CSV to a temporary file in `path`'s folder, fsync it, then rename it onto `path`."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_predictions(model: Ranker, root: str | Path, dataset: RetrievalDataset | None = None,
                      batch_size: int = 256, flip: bool = False, metric: str = "euclidean",
                      rerank: bool = False, name: str = "pred.csv") -> Path:
    """Fill `root/test/pred.csv`'s gallery column with each query's top-1 gallery image.

    Args:
        model: any model of this project (its `embed` gives the retrieval feature), or the test
            split's :class:`Retrieval` already measured (then `flip`, `metric` are its own).
        root: the data root.
        dataset: the test RetrievalDataset, if already made (its cache is reused).
        flip: rank with features averaged over each image and its mirror image.
        metric: the distance to rank by, "euclidean" or "cosine".
        rerank: rank by k-reciprocal re-ranked distances (off by default: it is transductive,
            every query's ranking then depends on all the test queries at once).
        name: the file written beside test/pred.csv: "pred.csv" fills it in place; another name
            (the stronger recipe's "pred_beyond.csv") writes pred.csv's rows, filled, to that file and
            leaves pred.csv alone.

    Returns:
        The path written (`test/pred.csv`).

    Raises:
        PredictionWriteError when pred.csv (or its folder) is read-only; the predictions are
        then written to `pred.predicted.csv` beside it (or to the working folder) and the
        error names that file.
    """
    root = Path(root)
    dataset = dataset if dataset is not None else RetrievalDataset(root, "test")
    pred_csv = dataset.csv
    retrieval = _as_retrieval(model, dataset, batch_size, flip, metric)
    if rerank and not retrieval.reranked:
        retrieval = retrieval.rerank()
    if retrieval.dist.shape != (len(dataset.queries), len(dataset.gallery)):
        raise ValueError(f"{pred_csv}: the retrieval has {tuple(retrieval.dist.shape)} distances, expected "
                         f"[{len(dataset.queries)} queries, {len(dataset.gallery)} gallery images]")
    ranks = retrieval.ranked(1)  # [Q, 1]
    template = gallery_cell_template(root)
    table = read_csv(pred_csv, ("query", "gallery"))
    gcol = table.columns.index("gallery")
    exts = [Path(p).suffix for p in dataset.gallery_paths]
    rows = [list(r) for r in table.rows]
    for row, k in zip(rows, ranks[:, 0].tolist()):
        row[gcol] = template.format(k=k, ext=exts[k])
    with open(pred_csv, newline="", encoding="utf-8-sig") as f:
        header = [h.strip() for h in next(csv.reader(f))]
    target = pred_csv.with_name(name)  # a ValueError for anything but a file name
    if (not target.exists() or os.access(target, os.W_OK)) and os.access(target.parent, os.W_OK):
        _write_rows(target, header, rows)
        return target
    if target != pred_csv:
        raise PredictionWriteError(f"{target} cannot be written (read-only)", target)
    for fallback in (pred_csv.with_name("pred.predicted.csv"), Path.cwd() / "pred.predicted.csv"):
        try:
            _write_rows(fallback, header, rows)
        except OSError:
            continue
        raise PredictionWriteError(f"{pred_csv} is read-only, so it was left unchanged; the predictions "
                                   f"were written to {fallback} instead", fallback)
    raise PredictionWriteError(f"{pred_csv} is read-only and no fallback file could be written", pred_csv)


def query_key(cell: str) -> str:
    """How a query cell of a pred.csv / gt.csv is matched: its file name (so "test/query/7.jpg",
    "C:\\data\\test\\query\\7.jpg" and "7.jpg" are the same query)."""
    return Path(cell.replace("\\", "/")).name


def read_answers(path: str | Path) -> dict[str, str]:
    """A query → gallery table (pred.csv, gt.csv, test_gt.csv) as {query_key(query): gallery number
    as text ("" where the cell is empty)}; read_csv's errors name the file."""
    t = read_csv(path, ("query", "gallery"))
    return {query_key(q): Path(g.replace("\\", "/")).stem for q, g in zip(t.column("query"), t.column("gallery"))}


def test_ground_truth(root: str | Path, test: RetrievalDataset) -> torch.Tensor:
    """``[Q]`` gallery index of each query of ``test`` (a RetrievalDataset over ``root``'s test split,
    queries in ``test/pred.csv``'s order) from ``root/test_gt.csv``, which only a layout built by
    make_data.py has (the course's test answers are withheld). Errors name the file."""
    gt_csv = Path(root) / "test_gt.csv"
    if not gt_csv.is_file():
        raise FileNotFoundError(f"{gt_csv}: no test ground truth (only a built layout has one)")
    gallery_of = read_answers(gt_csv)
    missing = [q for q in test.query_paths if not gallery_of.get(query_key(q))]
    if missing:
        raise ValueError(f"{gt_csv}: no ground truth for {len(missing)} test queries, e.g. {missing[0]}")
    return torch.tensor([int(gallery_of[query_key(q)]) for q in test.query_paths])


def labelled_test_split(root: str | Path, image_size: int | tuple[int, int] = 128,
                        device: torch.device | str | None = None) -> RetrievalDataset:
    """``root``'s test split as a RetrievalDataset at ``image_size`` whose ``gt`` holds each query's
    gallery index from ``test_gt.csv`` (:func:`test_ground_truth`), so it can be scored like val.
    Read it before a long run: a layout without ground truth then fails at once."""
    test = RetrievalDataset(root, "test", device=device, image_size=image_size)
    test.gt = test_ground_truth(root, test)
    return test


def score_predictions(pred_csv: str | Path, gt_csv: str | Path) -> dict[str, float]:
    """Top-1 accuracy of a filled pred.csv against a ground truth with the same columns (test_gt.csv).

    Queries are matched by file name; gallery cells by their gallery number.

    Returns:
        {"accuracy": share of ground-truth queries predicted right, "n": number of queries,
         "missing": queries of the ground truth with no (or an empty) prediction}.
    """
    pred, gt = read_answers(pred_csv), read_answers(gt_csv)
    missing = sum(1 for q in gt if not pred.get(q))
    correct = sum(1 for q, g in gt.items() if pred.get(q) == g)
    return {"accuracy": correct / len(gt), "n": float(len(gt)), "missing": float(missing)}


# ------------------------------------------------------------------- which model fills pred.csv
PRED_RULES = ("smoothed", "rank1")
PRED_RULE = "smoothed"
"""How the notebook picks the handout model for pred.csv (:func:`choose_pred_model`). Reasoned, not measured:
the mean of three epochs' val mAP moves about half as much as one epoch's; bench/ceiling_report.py
(BENCHMARKS section 8) compares the two rules once runs with test answers at every epoch are recorded."""


def window_mean(values: Sequence[float | None], epoch: int, around: int = 1) -> float:
    """The mean of ``values`` (one per epoch) over the 1-based ``epoch`` and ``around`` epochs either side
    (those that exist and were measured)."""
    window = [v for v in values[max(0, epoch - 1 - around): epoch + around] if v is not None]
    return sum(window) / len(window)


def kept_mean(history: Any, key: str = "mAP", around: int = 1) -> float:
    """The mean of a val curve over the kept epoch and ``around`` epochs either side (those that exist):
    a single epoch of a 49-person gallery moves by a few hundredths, the mean of three about half as much."""
    return window_mean(getattr(history, key), history.kept_epoch, around)


def choose_pred_model(histories: dict[str, Any], rule: str = PRED_RULE) -> tuple[str, str]:
    """(the name of the handout model that fills pred.csv, why) by ``rule``: "smoothed" — the higher mean
    val mAP over its kept epoch and the epochs either side; "rank1" — the higher val Rank-1 at the kept
    epoch (the earlier rule)."""
    if rule not in PRED_RULES:
        raise ValueError(f"rule: expected one of {PRED_RULES}, got {rule!r}")
    if rule == "rank1":
        scores = {n: h.at_kept("rank1") for n, h in histories.items()}
        what = "val Rank-1 at its kept epoch"
    else:
        scores = {n: kept_mean(h) for n, h in histories.items()}
        what = "val mAP averaged over its kept epoch and its neighbours that exist"
    best = max(scores, key=scores.get)
    others = ", ".join(f"{s:.3f}" for n, s in scores.items() if n != best)
    return best, f"the handout model with the higher {what}: {scores[best]:.3f} against {others}"


def score_test(retrievals: dict[str, Retrieval], root: str | Path, dataset: RetrievalDataset) -> dict | None:
    """Each model's test Rank-1 and mAP from its test Retrieval (features already measured), against
    ``root/test_gt.csv`` where the layout has one (None otherwise: the course withholds it)."""
    if not (Path(root) / "test_gt.csv").is_file():
        return None
    gt = test_ground_truth(root, dataset)
    out = {}
    for name, r in retrievals.items():
        m = Retrieval.from_features(r.query, r.gallery, gt, r.metric, r.flip).metrics()
        out[name] = {"rank1": m["rank1"], "mAP": m["mAP"], "queries": len(gt)}
    return out


def describe_test_scores(scores: dict | None, pred_name: str) -> str:
    """Lines for the prediction cell: every model's test Rank-1 (= pred.csv's top-1 accuracy for the model
    that filled it) and mAP, or why there are none."""
    if scores is None:
        return "No test_gt.csv here (the course keeps the test answers): pred.csv is ready to hand in."
    lines = [f"Test, against test_gt.csv ({next(iter(scores.values()))['queries']} queries): "]
    for name, s in scores.items():
        mark = " ← pred.csv" if name == pred_name else (" ← pred_beyond.csv" if "beyond" in name else "")
        lines.append(f"  {name}: Rank-1 (top-1 accuracy) {s['rank1']:.3f}, mAP {s['mAP']:.3f}{mark}")
    return "\n".join(lines)
