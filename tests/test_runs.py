"""reid/runs.py: typed --set FIELD=VALUE settings, and what a recorded run changed from its preset."""
from __future__ import annotations

import pytest

from reid.runs import SettingError, parse_setting, settings_changed
from reid.train import TrainConfig


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
    with pytest.raises(SettingError, match=words):
        parse_setting(text)


def test_settings_changed_names_only_what_differs_from_the_preset():
    assert settings_changed(TrainConfig.strong(epochs=5, time_budget_s=60, seed=3).to_dict()) == "preset"
    cfg = TrainConfig.handout_id(epochs=4, lr=1e-3, flip=False).to_dict()
    assert settings_changed(cfg) == "lr=0.001, flip=False"
    cfg["small_epochs"] = 4  # a setting a branch had and the code no longer has
    assert settings_changed(cfg).endswith("small_epochs=4")
    # A run recorded before a setting existed did what the setting's default does.
    old = TrainConfig.strong(epochs=4).to_dict()
    del old["metric"], old["flip_test"], old["input_size"]
    assert settings_changed(old) == "flip_test=False, metric=euclidean, input_size=128x128"
    # Settings a recipe does not read are not differences: p for listed triplets, batch_size for P×K.
    assert settings_changed(TrainConfig.handout_triplet(epochs=4, p=3).to_dict()) == "preset"
    assert settings_changed(TrainConfig.handout_triplet(epochs=4, batch_size=7).to_dict()) == "batch_size=7"
    mined = TrainConfig.handout_triplet(epochs=4, mining="batch_all", p=8, k=4, batch_size=7).to_dict()
    assert settings_changed(mined) == "p=8, mining=batch_all"
    assert settings_changed({**TrainConfig.strong(epochs=4).to_dict(), "input_size": [128, 64]}) == "preset"


def test_set_reads_an_input_size():
    assert parse_setting("input_size=128x64") == ("input_size", (128, 64))
    assert parse_setting("input_size=none") == ("input_size", None)
    with pytest.raises(SettingError, match="HxW"):
        parse_setting("input_size=128")


def test_ablation_table_reads_each_pair_of_recorded_runs(tmp_path, monkeypatch):
    """One row per ablation, Rank-1 with and without at the epoch it names: an epoch number, each
    run's last epoch, or the last epoch of two runs planned for equal wall time (their minutes
    shown); a missing run is named."""
    import json

    from reid import runs

    def write(name: str, rank1: list[float], minutes: float) -> None:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(json.dumps({"rank1": rank1, "elapsed_seconds": [minutes * 60] * len(rank1)}))

    write("a.json", [0.1, 0.5, 0.6], 9.0)
    write("b.json", [0.2, 0.3], 10.0)
    monkeypatch.setattr(runs, "ABLATIONS", (("x", "used", "a.json", "b.json", 2),
                                            ("y", "used", "a.json", "b.json", None),
                                            ("z", "used", "a.json", "b.json", "time")))
    table = runs.ablation_table(tmp_path)
    assert table.loc["x", "Rank-1 with"] == 0.5 and table.loc["x", "Rank-1 without"] == 0.3
    assert table.loc["x", "compared at"] == "epoch 2"
    assert table.loc["y", "difference"] == 0.3
    assert table.loc["y", "compared at"] == "last epochs (3 vs 2)"
    assert table.loc["z", "compared at"] == "equal time (3 vs 2 epochs)" and table.loc["z", "minutes"] == "9.0 / 10.0"
    write("a_seed1.json", [0.1, 0.4, 0.4], 11.0)
    write("b_seed1.json", [0.2, 0.5], 12.0)
    monkeypatch.setattr(runs, "ABLATIONS", (("s", "used", ("a.json", "a_seed1.json"), ("b.json", "b_seed1.json"), "time"),))
    row = runs.ablation_table(tmp_path).loc["s"]              # several training seeds: their mean
    assert (row["Rank-1 with"], row["Rank-1 without"]) == (0.5, 0.4)
    assert row["compared at"] == "equal time (3 vs 2 epochs), 2 seeds" and row["minutes"] == "10.0 / 11.0"
    assert row["runs"] == "a.json and 1 more training seed / b.json and 1 more training seed"
    monkeypatch.setattr(runs, "ABLATIONS", (("u", "used", ("a.json", "a_seed1.json"), "b.json", "time"),))
    with pytest.raises(ValueError, match="'u': 2 training seeds with it, 1 without"):
        runs.ablation_table(tmp_path)
    monkeypatch.setattr(runs, "ABLATIONS", (("v", "used", ("a.json", "b_seed1.json"), ("b.json", "b.json"), None),))
    with pytest.raises(ValueError, match=r"ran \[2, 3\] epochs; a mean needs one schedule"):
        runs.ablation_table(tmp_path)
    monkeypatch.setattr(runs, "ABLATIONS", (("e", "used", "a.json", "b.json", 3),))
    with pytest.raises(ValueError, match="b.json: has 2 epochs; the ablation 'e' compares epoch 3"):
        runs.ablation_table(tmp_path)
    monkeypatch.setattr(runs, "ABLATIONS", (("w", "used", "a.json", "missing.json", None),))
    with pytest.raises(FileNotFoundError, match="missing.json: a recorded run of the ablation 'w' is missing"):
        runs.ablation_table(tmp_path)


def test_ablation_table_of_the_recorded_runs():
    """The notebook's ablation table: every run ABLATIONS names is in results/, the input-shape line
    is compared at equal wall time."""
    from pathlib import Path

    from reid.runs import ABLATIONS, ablation_table

    table = ablation_table(Path(__file__).resolve().parent.parent / "results")
    assert len(table) == len(ABLATIONS)
    shape = next(a for a in table.index if a.startswith("the person at 128×64"))
    assert table.loc[shape, "compared at"] == "equal time (30 vs 18 epochs), 3 seeds"
    shown = table[["used in", "Rank-1 with", "Rank-1 without", "difference", "compared at"]]
    assert len(shown) <= 20 and all(len(str(v)) <= 40 for v in [*shown.index, *shown.columns, *shown.to_numpy().ravel()])


def test_shape_run_files_name_the_training_seeds(tmp_path):
    """results/shape naming: seed 0 is <layout>_<shape>.json, seed S _seed<S>.json; other files that
    start alike (another shape, a backup) are not runs of it."""
    from reid.runs import shape_run_files, shape_run_name

    names = [shape_run_name("m40_s0", "128x64", s) for s in (0, 2, 10)]
    assert names == ["m40_s0_128x64.json", "m40_s0_128x64_seed2.json", "m40_s0_128x64_seed10.json"]
    for name in names + ["m40_s0_128x64_old.json", "m40_s0_128x640.json", "m40_s0_128x64_seed0.json"]:
        (tmp_path / name).write_text("{}")
    assert shape_run_files(tmp_path, "m40_s0", "128x64") == {s: tmp_path / n for s, n in zip((0, 2, 10), names)}
