"""The pretrained start's stand-in (bench/standin_weights.py): a tiny Market-named pool drawn by reid.synthetic,
a layout built from it, and a weights file of one short epoch trained on the pool's other people (the
``standin`` fixture of conftest.py). The whole notebook starting every model from such a file runs in
tests/test_colab_notebook.py, on a simulated Colab runtime."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reid.build import read_pool
from reid.checkpoints import file_sha256
from reid.model import ModifiedResNet18, load_imagenet_weights

ROOT = Path(__file__).resolve().parent.parent


def test_the_standin_trains_on_the_pool_minus_the_layouts_people(standin):
    record, pool = standin["record"], read_pool(standin["pool"])
    in_layout = {item.pid for item in pool
                 if any(p.read_bytes() == item.source.read_bytes()
                        for p in standin["layout"].rglob("*.jpg"))}
    assert len(in_layout) == 20                                     # 10 train + 5 val + 5 test identities
    assert set(record["excluded_identities"]) == in_layout
    assert set(record["trained_identities"]) == {item.pid for item in pool} - in_layout
    assert record["trained_images"] == 8 * 10 and record["sha256"] == file_sha256(standin["weights"])
    assert "overstate an ImageNet start" in record["stands_in_for"]


def test_the_standin_is_in_the_2017_files_format_and_loads_through_c6(standin):
    state = torch.load(standin["weights"], weights_only=True)
    assert not any(k.endswith("num_batches_tracked") for k in state)
    assert state["fc.weight"].shape == (1000, 512) and state["fc.bias"].shape == (1000,)
    report = load_imagenet_weights(ModifiedResNet18(), standin["weights"])
    assert report.ok and len(report.loaded) == 100 and report.sha256 == standin["record"]["sha256"]


def test_a_layout_of_another_pool_is_an_error(standin, tmp_path, capsys):
    from bench import standin_weights

    with pytest.raises(SystemExit) as exit_:
        standin_weights.main([str(standin["pool"]), str(tmp_path / "w.pth"), str(standin["other"]), "--epochs", "1"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "built from a pool (BUILD_INFO.json) but none of its" in " ".join(err.split()) and str(standin["other"]) in err
    assert not (tmp_path / "w.pth").exists()


def test_another_pool_on_purpose_leaves_no_one_out(standin, tmp_path):
    """--other-pool: the synthetic pedestrians against a Market layout — no person can be shared, so none is
    left out, and the record says so; a layout that does share the pool's images is still an error."""
    from bench import standin_weights

    paths, pids, record = standin_weights.training_people(standin["pool"], [standin["other"]], other_pool=True)
    assert record["other_pool"] is True and record["excluded_identities"] == [] and len(paths) == 30 * 8
    with pytest.raises(standin_weights.StandinError, match="which --other-pool says is another pool"):
        standin_weights.training_people(standin["pool"], [standin["layout"]], other_pool=True)
