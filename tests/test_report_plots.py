"""reid/report.py and reid/plots.py: summaries computed from numbers, figures that show what they claim."""
from __future__ import annotations

import functools

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from reid.data import IMAGENET_MEAN, person_transform, reid_transform  # noqa: E402
from reid.plots import (FIGURE_DPI, denormalize, plot_history, plot_ranked_results, show_before_after,  # noqa: E402
                        show_gallery_grid, tile_boxes, tile_titles)
from reid.report import describe_history, pick_examples, save_results  # noqa: E402
from reid.synthetic import render_image  # noqa: E402
from reid.train import History, TrainConfig  # noqa: E402
from reid.text import unwrap  # noqa: E402


def history() -> History:
    return History(recipe="id", iter_loss=[5.0] * 10 + [1.0] * 10, epoch_train_loss=[3.0, 1.0],
                   val_loss=[0.9, 0.7], rank1=[0.2, 0.5], rank5=[0.4, 0.7], rank10=[0.6, 0.9],
                   mAP=[0.3, 0.55], epoch_seconds=[60.0, 60.0], elapsed_seconds=[65.0, 130.0])


def test_describe_history_reads_the_numbers():
    text = unwrap(describe_history(history()))
    assert "2 epochs, 2.0 min of training" in text
    assert "5.000 over the first tenth" in text and "1.000 over the last tenth" in text
    assert "0.900 after epoch 1 → 0.700 after epoch 2 (lowest 0.700 at epoch 2)" in text
    text = " ".join(text.split())
    assert "Val Rank-1: 0.200 after epoch 1 → 0.500" in text
    assert "Kept: epoch 2 of 2, the best val mAP (0.550); there Rank-1 0.500, Rank-5 0.700, Rank-10 0.900" in text


def test_pick_examples_hits_then_misses():
    ranks = torch.tensor([[0, 1], [2, 0], [2, 1], [3, 2], [0, 3]])
    gt = torch.tensor([0, 0, 2, 2, 1])
    # top-1 right for rows 0 and 2; wrong for rows 1, 3, 4
    assert pick_examples(ranks, gt, n_hits=3, n_misses=2) == [0, 2, 1, 3]


def test_denormalize_inverts_the_transform():
    img = Image.new("RGB", (64, 128), (200, 100, 50))
    x = reid_transform()(img)
    rgb = denormalize(x)
    assert rgb.shape == (128, 128, 3)
    assert abs(rgb[64, 64, 0] - 200 / 255) < 1e-5
    assert abs(rgb[0, 0, 1] - IMAGENET_MEAN[1]) < 1e-6        # the padding shows as the mean colour


def test_figures_are_saved(tmp_path):
    h = history()
    fig = plot_history({"a": h, "b": h.to_dict()}, path=tmp_path / "c.png")
    assert len(fig.axes) == 6 and (tmp_path / "c.png").stat().st_size > 1000
    imgs = torch.zeros(6, 3, 128, 128)
    ranks = torch.tensor([[1, 2, 3], [0, 1, 2]])
    fig = plot_ranked_results(imgs, imgs, ranks, torch.tensor([1, 2]), rows=[0, 1], path=tmp_path / "r.png")
    assert len(tile_boxes(fig)) == 2 * 4
    titles = tile_titles(fig)
    assert titles[0] == ("query 0", "black") and titles[1] == ("#1: 1", "green")   # query 0's top-1 is its gt
    assert titles[5] == ("#1: 0", "red")                                             # query 1's top-1 is not
    frames = [p.get_edgecolor() for p in fig.axes[0].patches]
    assert len(frames) == 8 and frames[1] == matplotlib.colors.to_rgba("green")
    fig = show_gallery_grid(imgs, ncols=4, path=tmp_path / "g.png")
    assert len(tile_boxes(fig)) == 6 and [t for t, _ in tile_titles(fig)] == list("012345")
    assert (tmp_path / "g.png").is_file()
    show_before_after(Image.new("RGB", (64, 128)), imgs[0])


@functools.lru_cache(maxsize=2)
def pedestrians(shape: str) -> torch.Tensor:
    """100 synthetic pedestrians (64×128 crops, the notebook's synthetic data) as C2's padded
    squares `[100, 3, 128, 128]` or as the person at 128×64 `[100, 3, 128, 64]`."""
    transform = reid_transform() if shape == "square" else person_transform((128, 64))
    return torch.stack([transform(render_image(0, i // 4, i % 4, i % 3)) for i in range(100)])


@pytest.mark.parametrize("shape, aspect", [("square", 1.0), ("person", 0.5)])
def test_image_figures_keep_the_aspect_and_stay_small(tmp_path, shape, aspect):
    imgs = pedestrians(shape)
    ranks = torch.stack([torch.roll(torch.arange(100), -q)[:10] for q in range(6)])  # query q: q, q+1, …
    gt = torch.tensor([0, 1, 2, 50, 50, 50])
    figs = {"ranked": plot_ranked_results(imgs, imgs, ranks, gt, range(6), path=tmp_path / "r.png", title="ranked"),
            "gallery": show_gallery_grid(imgs, ncols=20, path=tmp_path / "g.png", title="gallery (100 images)")}
    for name, fig in figs.items():
        boxes = tile_boxes(fig)
        assert len(boxes) == (66 if name == "ranked" else 100)
        assert all(abs(w / h - aspect) < 0.03 for w, h in boxes), name   # tiles as the images
    for file in ("r.png", "g.png"):
        with Image.open(tmp_path / file) as png:
            assert png.mode == "P" and len(png.getcolors()) <= 128           # a palette PNG
        assert (tmp_path / file).stat().st_size < 100_000, file                # issue 13: about 100 KB
    full = plot_ranked_results(imgs, imgs, ranks, gt, range(6), path=tmp_path / "full.png", colors=None)
    assert (tmp_path / "r.png").stat().st_size < 0.6 * (tmp_path / "full.png").stat().st_size
    assert full.get_size_inches()[0] == pytest.approx(figs["ranked"].get_size_inches()[0])
    plt.close("all")


def test_person_figures_are_about_half_as_wide():
    square, person = pedestrians("square")[:11], pedestrians("person")[:11]
    ranks, gt = torch.arange(1, 11).view(1, 10), torch.tensor([1])
    w_square = plot_ranked_results(square, square, ranks, gt, [0]).get_size_inches()[0]
    w_person = plot_ranked_results(person, person, ranks, gt, [0]).get_size_inches()[0]
    assert w_person / w_square == pytest.approx((0.45 + 0.08) / (0.9 + 0.08), abs=0.01)  # tile 0.45 in + gap
    plt.close("all")


def test_save_results_round_trip(tmp_path):
    table = pd.DataFrame({"Rank-1": {"ID loss": 0.5}})
    path = save_results(tmp_path / "r.json", "Data: x", table, {"ID loss": (TrainConfig.handout_id(), history())},
                        {"test_score": None})
    doc = json.loads(path.read_text())
    assert doc["table"]["ID loss"]["Rank-1"] == 0.5
    assert doc["runs"]["ID loss"]["history"]["rank1"] == [0.2, 0.5]
    assert doc["runs"]["ID loss"]["config"]["recipe"] == "id"


def test_compare_models_measures_each_model_as_its_validation_did(tiny_layout, monkeypatch):
    import reid.report as R
    from conftest import MeanColour
    from reid.data import RetrievalDataset
    from reid.evaluate import retrieve

    ds = RetrievalDataset(tiny_layout, "val")
    seen = []
    monkeypatch.setattr(R, "retrieve", lambda *a, **k: seen.append(k) or retrieve(*a, **k))
    cfg = TrainConfig.strong(metric="cosine")
    table = R.compare_models({"plain": (MeanColour(), history()), "as trained": (MeanColour(), history(), cfg)}, ds)
    assert seen == [{"flip": False, "metric": "euclidean"}, {"flip": True, "metric": "cosine"}]
    expected = retrieve(MeanColour(), ds, flip=True, metric="cosine").metrics()
    assert table.loc["as trained", "mAP"] == round(expected["mAP"], 3) and table.loc["as trained", "epoch (kept on val mAP)"] == "2 of 2"


def test_compare_models_reuses_the_last_validation_and_shows_flip_columns(tiny_layout, monkeypatch):
    import reid.report as R
    from conftest import LeftHalf
    from reid.data import RetrievalDataset
    from reid.evaluate import retrieve

    ds = RetrievalDataset(tiny_layout, "val")
    plain, flipped = retrieve(LeftHalf(), ds), retrieve(LeftHalf(), ds, flip=True, metric="cosine")
    h = history()
    h.kept_retrieval = flipped  # as train_model leaves it: measured as cfg says
    monkeypatch.setattr(R, "retrieve", lambda *a, **k: pytest.fail("measured again"))
    cfg = TrainConfig.strong(metric="cosine")
    table = R.compare_models({"from history": (LeftHalf(), h, cfg), "given": (plain, history()),
                              "both": ((plain, flipped), history())})
    m, f = plain.metrics(), flipped.metrics()
    assert table.loc["from history", "Rank-1"] == round(f["rank1"], 3)
    assert table.loc["given", "Rank-1"] == round(m["rank1"], 3)
    assert table.loc["both", "mAP"] == round(m["mAP"], 3)
    assert table.loc["both", f"mAP ({R.FLIP_LABEL})"] == round(f["mAP"], 3)
    # mINP equals mAP with one gallery image per person: left out of the tables
    assert m["mINP"] == pytest.approx(m["mAP"]) and "mINP" not in table.columns
    assert list(table.columns[:4]) == ["Rank-1", "Rank-5", "Rank-10", "mAP"]
    views = R.compare_models({"m": ({"": plain, R.FLIP_LABEL: flipped, R.RERANK_LABEL: plain.rerank(k1=3, k2=2)},
                                    history())})
    assert list(views.columns[:12]) == [f"{n}{s}" for s in ("", f" ({R.FLIP_LABEL})", f" ({R.RERANK_LABEL})")
                                        for n in ("Rank-1", "Rank-5", "Rank-10", "mAP")]
    assert views.loc["m", f"mAP ({R.RERANK_LABEL})"] == round(plain.rerank(k1=3, k2=2).metrics()["mAP"], 3)


def test_evaluate_retrieval_is_retrieve_under_the_table_headers(tiny_layout):
    from conftest import MeanColour
    from reid.data import RetrievalDataset
    from reid.evaluate import retrieve
    from reid.report import display_metrics, evaluate_retrieval

    ds = RetrievalDataset(tiny_layout, "val")
    m = retrieve(MeanColour(), ds).metrics()
    assert evaluate_retrieval(MeanColour(), ds) == {"Rank-1": m["rank1"], "Rank-5": m["rank5"], "Rank-10": m["rank10"],
                                                    "mAP": m["mAP"], "mINP": m["mINP"]}
    assert display_metrics({"Rank-1": 0.5}) == {"Rank-1": 0.5}  # older results' headers pass unchanged


def test_show_images_titles_each_tile(tmp_path):
    from reid.plots import show_images

    images = torch.nn.functional.interpolate(torch.randn(3, 3, 16, 8), size=(128, 64), mode="bilinear")  # smooth, like photos
    fig = show_images(images, ["anchor", "positive", "negative"], path=tmp_path / "t.png", title="a triplet")
    assert [t for t, _ in tile_titles(fig)] == ["anchor", "positive", "negative"]
    assert fig.get_size_inches()[0] >= 7.5                                  # a short row is drawn large enough to read
    assert (tmp_path / "t.png").stat().st_size < 100_000
    with pytest.raises(ValueError, match="3 images and 2 titles"):
        show_images(images, ["a", "b"])


@pytest.mark.parametrize("maps, words", [
    ([0.1, 0.2, 0.3, 0.4, 0.5], "val mAP was still rising at its last epoch: its 3-epoch mean reached a new "
                                "best, 0.400 (+0.300 over the last 4 epochs)"),
    ([0.1, 0.5, 0.6, 0.5, 0.45, 0.4, 0.38, 0.35, 0.3], "val mAP peaked at epoch 4 (its 3-epoch mean: 0.533)"),
    ([0.1, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6], "val mAP has levelled off: no gain above 0.005 in its 3-epoch "
                                                    "mean for the last 4 epochs (best 0.600 at epoch 5)"),
])
def test_verdict_reads_the_curve_by_the_rule_that_trains_it(maps, words):
    """The verdict is the training loop's own reading (reid.schedule.follow_curve on val mAP)."""
    from reid.report import verdict

    h = History(recipe="id", mAP=maps, rank1=maps, epoch_train_loss=[3.0 - 0.1 * i for i in range(len(maps))],
                val_loss=[1.0] * len(maps))
    text = verdict(h)
    assert words in text and "the training loss is still falling" in text and "no longer falling" in text


def test_verdict_of_a_stopped_run_quotes_its_stop():
    from reid.report import verdict

    h = History(recipe="id", mAP=[0.5] * 6, epoch_train_loss=[1.0] * 6, stop_reason="levelled: no gain ...")
    assert verdict(h).startswith("Val curve: val mAP levelled: no gain ... (its 3-epoch mean best at epoch 1: 0.500)")


def test_loss_trend_has_a_tolerance():
    from reid.report import loss_trend

    assert loss_trend([0.3, 0.206, 0.205]) == "no longer falling"   # within 1 % of the lowest before
    assert loss_trend([3.546, 3.524]) == "no longer falling"
    assert loss_trend([3.6, 3.5]) == "still falling"
    assert loss_trend([0.2, 0.3, 0.25]) == "no longer falling"


def _fig_kinds(tmp_path):
    """Every figure the notebook draws, at the sizes it draws them (fake images and curves)."""
    from reid.actmap import show_activation_maps
    from reid.plots import show_images

    square, person = pedestrians("square"), pedestrians("person")[:8]
    names = ("ID loss (handout)", "triplet loss (handout)", "stronger recipe (beyond)")
    maps = torch.rand(8, 128, 128)
    ranks = torch.randint(0, 100, (6, 10))
    h = History(recipe="id", iter_loss=[5.0 - 0.01 * i for i in range(500)], val_loss=[1.0, 0.8, 0.7],
                rank1=[0.1, 0.3, 0.35], rank5=[0.3, 0.5, 0.6], rank10=[0.4, 0.6, 0.7], mAP=[0.2, 0.4, 0.38],
                epoch_train_loss=[3.0, 2.0, 1.5])
    return {
        "curves (3 models)": plot_history({"ID loss (handout)": h, "triplet loss (handout)": h,
                                           "stronger recipe (beyond)": h}),
        "curves (1 model)": plot_history({"ID loss": h}),
        "ranked 128x128": plot_ranked_results(square, square, ranks, torch.zeros(6, dtype=torch.long), range(6),
                                              title="ID-loss model: top-10 gallery images per val query"),
        "ranked 128x64": plot_ranked_results(person, person, ranks % 8, torch.zeros(6, dtype=torch.long), range(6)),
        "gallery": show_gallery_grid(square, ncols=20, title="test gallery (100 images)"),
        "before/after": show_before_after(Image.new("RGB", (64, 128)), square[0]),
        "id samples": show_images(square[:6], [f"train_id[{i}]: id {i}" for i in range(6)], title="IDLossDataset"),
        "triplet": show_images(square[:3], ["anchor", "positive (same person)", "negative (another person)"]),
        "activation maps": show_activation_maps(dict.fromkeys(names), square[:8], maps={n: maps for n in names},
                                                titles=[f"query {i} (hit)" for i in range(8)]),   # the text is the test
    }


def test_every_figure_is_readable_shown_900_pixels_wide(tmp_path):
    from reid.plots import shown_text_px

    for name, fig in _fig_kinds(tmp_path).items():
        dpi = 100 if name.startswith("curves") or name == "before/after" else FIGURE_DPI   # as each is saved
        assert shown_text_px(fig, dpi=dpi) >= 10, name
        plt.close(fig)


def test_curves_have_a_panel_per_rank_and_no_unexplained_legend():
    h = History(recipe="id", iter_loss=[1.0] * 200, val_loss=[1.0, 0.5], rank1=[0.1, 0.2], rank5=[0.3, 0.4],
                rank10=[0.5, 0.6], mAP=[0.2, 0.1], epoch_train_loss=[1.0, 0.9])
    fig = plot_history({"a": h, "b": h})
    titles = [ax.get_title() for ax in fig.axes]
    assert {"Val Rank-1", "Val Rank-5", "Val Rank-10"} <= set(titles)
    assert any("solid: mean of 1/50 of the run" in t and "each model its own loss" in t for t in titles)
    assert fig.axes[0].get_xlabel().startswith("epoch")        # models with different iterations an epoch line up
    legend_texts = [t.get_text() for ax in fig.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
    assert "mean of" not in " ".join(legend_texts) and "a" in legend_texts and "b" in legend_texts
