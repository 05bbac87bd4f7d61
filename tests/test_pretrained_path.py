"""The pretrained start, end to end on this machine: a tiny Market-named pool drawn by reid.synthetic, a
layout built from it, a stand-in weights file of one short epoch trained on the pool's other people
(bench/standin_weights.py), and the notebook in quick mode starting every model from it."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid.build import build_from_pool, read_pool, write_synthetic_pool
from reid.checkpoints import file_sha256, load_checkpoint
from reid.config import start_folder
from reid.model import ModifiedResNet18, load_imagenet_weights

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.fixture(scope="module")
def standin(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("pretrained")
    pool = write_synthetic_pool(tmp / "pool", identities=30, per_id=8)
    layout = build_from_pool(pool, tmp / "layout", seed=0, train_ids=10, val_ids=5, test_ids=5, per_id=8)
    other = build_from_pool(write_synthetic_pool(tmp / "other_pool", identities=20, per_id=8, seed=7),
                            tmp / "other_layout", seed=0, train_ids=10, val_ids=5, test_ids=5, per_id=8)
    weights = tmp / "runs" / "standin.pth"
    done = run_module("bench.standin_weights", str(pool), str(weights), str(layout), "--epochs", "1", "--size", "64x32")
    assert done.returncode == 0, done.stderr
    return {"tmp": tmp, "pool": pool, "layout": layout, "other": other, "weights": weights,
            "record": json.loads(weights.with_suffix(".json").read_text())}


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


def test_a_layout_of_another_pool_is_an_error(standin, tmp_path):
    done = run_module("bench.standin_weights", str(standin["pool"]), str(tmp_path / "w.pth"), str(standin["other"]),
                      "--epochs", "1")
    assert done.returncode == 2
    assert "built from a pool (BUILD_INFO.json) but none of its" in done.stderr and str(standin["other"]) in done.stderr
    assert not (tmp_path / "w.pth").exists()


def _stdout(cell: dict) -> str:
    return "".join("".join(o.get("text", "")) for o in cell.get("outputs", []) if o.get("output_type") == "stream")


def test_the_notebook_starts_every_model_from_the_weights_file(standin):
    """Quick mode with REID_IMAGENET_WEIGHTS: C6 says ✓, each model's settings line names the pretrained
    start, and each model keeps a best.pt in its start's folder."""
    tmp = standin["tmp"]
    out = tmp / "executed.ipynb"
    done = run_module("jupyter", "nbconvert", "--to", "notebook", "--execute", "--output", str(out),
                      "--ExecutePreprocessor.timeout=900", "assignment.ipynb",
                      env={"REID_QUICK": "1", "REID_DATA": str(standin["layout"]), "REID_RUNS": str(tmp / "runs"),
                           "REID_IMAGENET_WEIGHTS": str(standin["weights"]), "MPLBACKEND": "Agg"})
    assert done.returncode == 0, done.stderr[-3000:]
    cells = [c for c in json.loads(out.read_text())["cells"] if c["cell_type"] == "code"]
    source = lambda c: c["source"] if isinstance(c["source"], str) else "".join(c["source"])  # noqa: E731
    c6 = next(c for c in cells if "load_imagenet_weights(backbone" in source(c))
    assert _stdout(c6).startswith("✓ ImageNet weights loaded")
    assert "✓ ImageNet weights: " in _stdout(cells[0]) and "$REID_IMAGENET_WEIGHTS" in _stdout(cells[0])
    sha = standin["record"]["sha256"]
    for marker in ("TrainConfig.handout_id", "TrainConfig.handout_triplet", "TrainConfig.strong"):
        text = " ".join(_stdout(next(c for c in cells if f"plan_training({marker}" in source(c))).split())
        assert re.search(rf"Settings: start: standin\.pth \(sha256 {sha[:8]}…\)", text), text
        assert "the budget from pretrained weights" in text or "quick mode" in text
    folder = next((tmp / "runs" / "quick").glob("pool-*")) / start_folder(f"sha256:{sha}")
    for model in ("id", "triplet", "strong"):
        best = load_checkpoint(folder / model / "best.pt")
        assert best["cfg"]["start"] == f"sha256:{sha}" and (folder / model / "last.pt").is_file()
