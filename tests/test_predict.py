"""reid/predict.py: pred.csv is filled with the top-1 gallery image, atomically, in gt.csv's path form."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from conftest import LeftHalf, MeanColour, write_csv
from reid.data import RetrievalDataset
from reid.evaluate import pairwise_distance, retrieve
from reid.predict import (PredictionWriteError, gallery_cell_template, labelled_test_split, rank_gallery,
                          score_predictions, write_predictions)


def rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.reliability
def test_fills_gallery_column_keeping_queries_and_order(layout):
    out = write_predictions(MeanColour(), layout)
    assert out == layout / "test/pred.csv"
    assert rows(out) == ["query,gallery", "test/query/7001.jpg,test/gallery/1.jpg",
                         "test/query/7000.jpg,test/gallery/2.jpg"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".pred")]   # no temp file left


@pytest.mark.reliability
def test_path_form_follows_val_gt(layout):
    gt = layout / "val/gt.csv"
    gt.write_text(gt.read_text().replace("val/gallery/", f"{layout.name}/val/gallery/"))
    assert gallery_cell_template(layout) == f"{layout.name}/test/gallery/{{k}}{{ext}}"
    write_predictions(MeanColour(), layout)
    assert rows(layout / "test/pred.csv")[1] == f"test/query/7001.jpg,{layout.name}/test/gallery/1.jpg"
    gt.write_text("query,gallery\nval/query/5001.jpg,3.jpg\n")
    assert gallery_cell_template(layout) == "{k}{ext}"


@pytest.mark.reliability
def test_read_only_pred_csv_is_kept_and_predictions_saved_beside(layout):
    pred = layout / "test/pred.csv"
    before = pred.read_text()
    pred.chmod(0o444)
    try:
        if os.access(pred, os.W_OK):
            pytest.skip("running as a user who can write read-only files (root)")
        with pytest.raises(PredictionWriteError) as err:
            write_predictions(MeanColour(), layout)
        assert pred.read_text() == before
        assert err.value.saved_to == layout / "test/pred.predicted.csv"
        assert "read-only" in str(err.value) and "pred.predicted.csv" in str(err.value)
        assert rows(err.value.saved_to)[1] == "test/query/7001.jpg,test/gallery/1.jpg"
    finally:
        pred.chmod(0o644)


@pytest.mark.reliability
def test_read_only_pred_csv_as_root(layout, monkeypatch):
    # Root can write anything, so simulate a read-only file through os.access.
    pred = layout / "test/pred.csv"
    before = pred.read_text()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == pred else real_access(p, mode))
    with pytest.raises(PredictionWriteError) as err:
        write_predictions(MeanColour(), layout)
    assert pred.read_text() == before and err.value.saved_to.is_file()


@pytest.mark.reliability
def test_interrupted_write_leaves_pred_csv_intact(layout, monkeypatch):
    pred = layout / "test/pred.csv"
    before = pred.read_text()

    def fail(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_predictions(MeanColour(), layout)
    assert pred.read_text() == before
    assert [p.name for p in pred.parent.iterdir() if p.suffix == ".tmp"] == []


def test_score_predictions(layout):
    write_predictions(MeanColour(), layout)
    gt = write_csv(layout / "test_gt.csv", "query,gallery",
                   ["test/query/7000.jpg,test/gallery/2.jpg", "test/query/7001.jpg,test/gallery/1.jpg"])
    assert score_predictions(layout / "test/pred.csv", gt) == {"accuracy": 1.0, "n": 2.0, "missing": 0.0}
    write_csv(gt, "query,gallery", ["test/query/7000.jpg,test/gallery/0.jpg", "test/query/7001.jpg,test/gallery/1.jpg"])
    assert score_predictions(layout / "test/pred.csv", gt)["accuracy"] == 0.5
    # An unfilled pred.csv scores 0 with every query missing.
    write_csv(layout / "empty_pred.csv", "query,gallery", ["test/query/7000.jpg,", "test/query/7001.jpg,"])
    assert score_predictions(layout / "empty_pred.csv", gt) == {"accuracy": 0.0, "n": 2.0, "missing": 2.0}


def test_labelled_test_split_reads_test_gt_in_pred_csv_order(layout):
    """The test split with each query's gallery index from test_gt.csv, queries in pred.csv's order
    (7001 first), at the asked size; it scores like val (the copies are found at rank 1)."""
    write_csv(layout / "test_gt.csv", "query,gallery",
              ["test/query/7000.jpg,test/gallery/2.jpg", "test/query/7001.jpg,test/gallery/1.jpg"])
    test = labelled_test_split(layout, image_size=(128, 64))
    assert [Path(q).name for q in test.query_paths] == ["7001.jpg", "7000.jpg"]
    assert test.gt.tolist() == [1, 2]
    assert tuple(test.get_gallery_imgs().shape) == (3, 3, 128, 64)
    assert retrieve(MeanColour(), test, flip=False).metrics()["rank1"] == 1.0
    # A query test_gt.csv does not answer: the error names the file and the query.
    write_csv(layout / "test_gt.csv", "query,gallery", ["test/query/7000.jpg,test/gallery/2.jpg"])
    with pytest.raises(ValueError, match=r"test_gt\.csv: no ground truth for 1 test queries, e\.g\. .*7001"):
        labelled_test_split(layout)
    (layout / "test_gt.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_gt\.csv: no test ground truth"):
        labelled_test_split(layout)


def test_rank_gallery_flip_ranks_by_mirror_averaged_features(tiny_layout):
    """flip=True: the distances are those of (left half + right half) / 2 = the whole image's mean."""
    ds = RetrievalDataset(tiny_layout, "val")
    q, g = ds.queries.images.float(), ds.gallery.images.float()
    dist, ranks = rank_gallery(LeftHalf(), ds, topk=2, flip=True)
    expected = pairwise_distance(q.mean(dim=(2, 3)), g.mean(dim=(2, 3)))
    assert torch.allclose(dist, expected, atol=1e-5)
    assert ranks.tolist() == torch.sort(expected, dim=1, stable=True).indices[:, :2].tolist()
    plain, _ = rank_gallery(LeftHalf(), ds, topk=2)
    assert not torch.allclose(plain, dist, atol=1e-4)


def test_rank_gallery_and_write_predictions_take_the_metric(layout):
    ds = RetrievalDataset(layout, "test")
    q, g = ds.queries.images.float(), ds.gallery.images.float()
    dist, ranks = rank_gallery(MeanColour(), ds, topk=2, metric="cosine")
    feats = (MeanColour().embed(q), MeanColour().embed(g))
    assert torch.allclose(dist, pairwise_distance(*feats, metric="cosine"), atol=1e-5)
    assert not torch.allclose(dist, pairwise_distance(*feats), atol=1e-3)
    path = write_predictions(MeanColour(), layout, metric="cosine")
    top1 = torch.sort(pairwise_distance(*feats, metric="cosine"), dim=1, stable=True).indices[:, 0].tolist()
    rows = path.read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == [f"test/gallery/{k}.jpg" for k in top1]


def test_rank_gallery_reads_a_retrieval_without_measuring_again(layout, monkeypatch):
    import reid.predict as P
    ds = RetrievalDataset(layout, "test")
    measured = retrieve(MeanColour(), ds, metric="cosine")
    monkeypatch.setattr(P, "retrieve", lambda *a, **k: pytest.fail("measured again"))
    dist, ranks = rank_gallery(measured, topk=2)
    assert dist is measured.dist
    assert ranks.tolist() == torch.sort(measured.dist, dim=1, stable=True).indices[:, :2].tolist()


def test_write_predictions_takes_a_precomputed_test_retrieval(layout):
    ds = RetrievalDataset(layout, "test")
    path = write_predictions(retrieve(MeanColour(), ds), layout, dataset=ds)
    assert [r.split(",")[1] for r in rows(path)[1:]] == ["test/gallery/1.jpg", "test/gallery/2.jpg"]


@pytest.mark.reliability
def test_write_predictions_refuses_a_retrieval_of_another_split(layout):
    ds = RetrievalDataset(layout, "test")
    val = retrieve(MeanColour(), RetrievalDataset(layout, "val"))
    with pytest.raises(ValueError, match=r"pred.csv: the retrieval has \(4, 12\) distances, expected \[2 queries, 3"):
        write_predictions(val, layout, dataset=ds)


def test_beyond_predictions_go_to_their_own_file(layout):
    from conftest import MeanColour
    from reid.predict import read_answers, write_predictions

    before = (layout / "test/pred.csv").read_bytes()
    out = write_predictions(MeanColour(), layout, name="pred_beyond.csv")
    assert out == layout / "test" / "pred_beyond.csv"
    assert (layout / "test/pred.csv").read_bytes() == before        # pred.csv is left alone
    assert read_answers(out) == {"7001.jpg": "1", "7000.jpg": "2"}
    with pytest.raises(ValueError):
        write_predictions(MeanColour(), layout, name="sub/pred.csv")


def test_pred_model_rule_smooths_a_noise_spike_and_the_rank1_rule_follows_it():
    """choose_pred_model: "smoothed" takes the higher val mAP averaged over the kept epoch and its neighbours,
    so one lucky epoch (model A's spike at epoch 3) does not decide; "rank1" (the earlier rule) follows the
    spike. The reason names the rule and both numbers; an unknown rule is refused."""
    from reid.predict import choose_pred_model, kept_mean
    from reid.train import History

    a = History(recipe="id", epoch_train_loss=[1.0] * 4, mAP=[0.20, 0.22, 0.40, 0.21], rank1=[0.1, 0.1, 0.35, 0.1])
    b = History(recipe="triplet", epoch_train_loss=[1.0] * 4, mAP=[0.30, 0.32, 0.33, 0.32],
                rank1=[0.2, 0.25, 0.30, 0.26])
    assert kept_mean(a) == pytest.approx((0.22 + 0.40 + 0.21) / 3) and kept_mean(b) == pytest.approx((0.32 + 0.33 + 0.32) / 3)
    name, why = choose_pred_model({"A": a, "B": b})
    assert name == "B" and "val mAP averaged over its kept epoch and its neighbours that exist" in why
    assert f"{kept_mean(b):.3f} against {kept_mean(a):.3f}" in why
    assert choose_pred_model({"A": a, "B": b}, rule="rank1")[0] == "A"
    with pytest.raises(ValueError, match="rule: expected one of"):
        choose_pred_model({"A": a}, rule="best")
