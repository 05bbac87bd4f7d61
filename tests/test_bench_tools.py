"""bench/: the time-to-accuracy command line (--set) and the BENCHMARKS.md section made from its JSONs."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bench import run_all
from bench.time_to_accuracy import parse_setting
from reid.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("text,expected", [
    ("lr=1e-3", ("lr", 1e-3)),
    ("flip=true", ("flip", True)),
    ("erase=0", ("erase", False)),
    ("epochs=12", ("epochs", 12)),
    ("max_iters_per_epoch=none", ("max_iters_per_epoch", None)),
    ("max_iters_per_epoch=5", ("max_iters_per_epoch", 5)),
    ("optimizer=sgd", ("optimizer", "sgd")),
    ("amp=None", ("amp", None)),
    ("time_budget_s=90", ("time_budget_s", 90.0)),
])
def test_set_is_typed_after_the_field(text, expected):
    name, value = parse_setting(text)
    assert (name, value) == expected and type(value) is type(expected[1])


@pytest.mark.parametrize("text,words", [
    ("lr", "FIELD=VALUE"), ("learning_rate=1", "FIELD one of"), ("epochs=1.5", "int"),
    ("flip=maybe", "bool"), ("lr=fast", "float"),
])
def test_set_rejects_bad_settings_by_name(text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        parse_setting(text)


def _write_run(path: Path, cfg: TrainConfig, rank1: list[float]) -> None:
    n = len(rank1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": cfg.to_dict(), "recipe": cfg.recipe, "rank1": rank1,
                                "rank5": [0.5] * n, "rank10": [0.7] * n, "mAP": [0.4] * n,
                                "elapsed_seconds": [600.0 * (i + 1) for i in range(n)],
                                "epoch_seconds": [500.0] * n}))


def test_settings_changed_names_only_what_differs_from_the_preset():
    assert run_all.settings_changed(TrainConfig.strong(epochs=5, time_budget_s=60, seed=3).to_dict()) == "preset"
    cfg = TrainConfig.handout_id(epochs=4, lr=1e-3, flip=False).to_dict()
    assert run_all.settings_changed(cfg) == "lr=0.001, flip=False"
    cfg["small_epochs"] = 4  # a setting a branch had and the code no longer has
    assert run_all.settings_changed(cfg).endswith("small_epochs=4")
    # A run recorded before a setting existed did what the setting's default does.
    old = TrainConfig.handout_triplet(epochs=4).to_dict()
    del old["mining"], old["flip_test"]
    assert run_all.settings_changed(old) == "flip_test=False, mining=none"
    # Settings a recipe does not read are not differences: p for listed triplets, batch_size for P×K.
    assert run_all.settings_changed(TrainConfig.handout_triplet(epochs=4, mining="none", p=3).to_dict()) == "mining=none"
    assert run_all.settings_changed(TrainConfig.handout_triplet(epochs=4, batch_size=7).to_dict()) == "preset"


def test_tta_section_puts_20_minute_runs_first(tmp_path):
    _write_run(tmp_path / "market_tta_id.json", TrainConfig.handout_id(epochs=3), [0.1, 0.3, 0.25])
    _write_run(tmp_path / "market_tta_strong.json", TrainConfig.strong(epochs=3), [0.1, 0.2, 0.7])
    _write_run(tmp_path / "explore" / "id_lr.json", TrainConfig.handout_id(epochs=2, lr=1e-3), [0.1, 0.2])
    text = run_all.tta_section(tmp_path)
    main, others = text.split("### Other recorded runs")
    # epochs end at 10, 20 and 30 minutes: the third is past the 20-minute mark
    assert "| handout ID loss (`market_tta_id.json`) | preset | float32 | 3 | 30.0 | 25.0 | 0.100, 0.300, 0.250 | " \
           "0.250 / 0.500 / 0.700 | 0.400 | 0.300 (epoch 2) | 0.300 | ≥ 0.45 |" in main
    assert "| 0.700 (epoch 3) | 0.200 | ≥ 0.60 |" in main  # 0.7 came after 20 minutes
    assert main.index("market_tta_id.json") < main.index("market_tta_strong.json")
    assert "(`explore/id_lr.json`) | lr=0.001 | float32 | 2 |" in others and "explore" not in main


def test_tta_rows_say_the_precision(tmp_path):
    """The "precision" a run recorded; before that field, amp=True meant bfloat16 and amp=None float32."""
    _write_run(tmp_path / "a.json", TrainConfig.handout_id(epochs=1, amp=True), [0.1])
    _write_run(tmp_path / "b.json", TrainConfig.handout_id(epochs=1), [0.1])
    assert "| preset | bfloat16 | 1 |" in run_all.tta_row(tmp_path / "a.json", "a.json")  # amp is no setting diff
    assert "| preset | float32 | 1 |" in run_all.tta_row(tmp_path / "b.json", "b.json")
    h = json.loads((tmp_path / "b.json").read_text())
    (tmp_path / "b.json").write_text(json.dumps({**h, "precision": "bfloat16"}))
    assert "| preset | bfloat16 | 1 |" in run_all.tta_row(tmp_path / "b.json", "b.json")


def test_benchmarks_md_shows_the_recorded_runs():
    """BENCHMARKS.md's section 3 is what tta_section makes of results/ (re-make it after a run)."""
    assert run_all.tta_section() in (ROOT / "bench" / "BENCHMARKS.md").read_text()


@pytest.mark.parametrize("skew, ok", [(0.0, True), (1e-3, False)])
def test_compiled_evaluator_is_timed_beside_ours_and_checked(tmp_path, skew, ok):
    """bench_eval's torchreid comparison on a stand-in `rank_cy` module (the reference loop,
    with its mAP skewed by `skew`): it is imported from the folder given, timed, and checked."""
    from bench import bench_eval

    folder = tmp_path / f"cy{int(ok)}"
    folder.mkdir()
    (folder / "rank_cy.py").write_text(
        "from bench.reference_eval import reference_cmc_map\n"
        "def evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):\n"
        "    r = reference_cmc_map(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)\n"
        f"    return r['cmc'], r['mAP'] + {skew}\n")
    problem = bench_eval.market_sized_problem(0, True, num_q=40, num_g=200)
    import sys
    sys.modules.pop("rank_cy", None)
    try:
        if ok:
            row = bench_eval.compiled_case("tiny", problem, folder, runs=2)
            assert row["max_abs_diff"] < 1e-6 and row["speedup"] > 0 and row["runs"] == 2
            assert "| tiny | " in bench_eval.markdown_compiled(row)
        else:
            with pytest.raises(AssertionError, match="differs from ours"):
                bench_eval.compiled_case("tiny", problem, folder, runs=1)
    finally:
        sys.modules.pop("rank_cy", None)
    assert str(folder) not in sys.path
