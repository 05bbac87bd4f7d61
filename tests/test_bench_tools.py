"""bench/ as its users run it (`python -m bench.…` in a subprocess; tests import nothing from bench/):
the time-to-accuracy section of BENCHMARKS.md made from run JSONs, the --set errors of
time_to_accuracy, and bench_eval's check of torchreid's compiled evaluator."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from reid.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


def run_module(*args: str) -> subprocess.CompletedProcess:
    """`python -m ARGS` from the repository root; its exit code, stdout and stderr."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _write_run(path: Path, cfg: TrainConfig, rank1: list[float], **extra: object) -> None:
    n = len(rank1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": cfg.to_dict(), "recipe": cfg.recipe, "rank1": rank1,
                                "rank5": [0.5] * n, "rank10": [0.7] * n, "mAP": [0.4] * n,
                                "elapsed_seconds": [600.0 * (i + 1) for i in range(n)],
                                "epoch_seconds": [500.0] * n, **extra}))


@pytest.fixture(scope="module")
def tta_text(tmp_path_factory) -> str:
    """Section 3 as `python -m bench.run_all --tta-section DIR` prints it for hand-made runs."""
    results = tmp_path_factory.mktemp("results")
    _write_run(results / "market_tta_id.json", TrainConfig.handout_id(epochs=3), [0.1, 0.3, 0.25])
    _write_run(results / "market_tta_strong.json", TrainConfig.strong(epochs=3), [0.1, 0.2, 0.7])
    _write_run(results / "explore" / "id_lr.json", TrainConfig.handout_id(epochs=2, lr=1e-3), [0.1, 0.2])
    # precision: amp=True recorded before the "precision" field meant bfloat16, amp=None float32
    _write_run(results / "explore" / "a_amp.json", TrainConfig.handout_id(epochs=1, amp=True), [0.1])
    _write_run(results / "explore" / "b_plain.json", TrainConfig.handout_id(epochs=1), [0.1])
    _write_run(results / "explore" / "c_field.json", TrainConfig.handout_id(epochs=1), [0.1], precision="bfloat16")
    done = run_module("bench.run_all", "--tta-section", str(results))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tta_section_puts_20_minute_runs_first(tta_text):
    main, others = tta_text.split("### Other recorded runs")
    # epochs end at 10, 20 and 30 minutes: the third is past the 20-minute mark
    assert "| ID-loss recipe (`market_tta_id.json`) | preset | float32 | 3 | 30.0 | 25.0 | 0.100, 0.300, 0.250 | " \
           "0.250 / 0.500 / 0.700 | 0.400 | 0.300 (epoch 2) | 0.300 | ≥ 0.45 |" in main
    assert "| 0.700 (epoch 3) | 0.200 | ≥ 0.60 |" in main  # 0.7 came after 20 minutes
    assert main.index("market_tta_id.json") < main.index("market_tta_strong.json")
    assert "(`explore/id_lr.json`) | lr=0.001 | float32 | 2 |" in others and "explore" not in main


def test_tta_rows_say_the_precision(tta_text):
    """The "precision" a run recorded; before that field, amp=True meant bfloat16 and amp=None float32."""
    assert "(`explore/a_amp.json`) | preset | bfloat16 | 1 |" in tta_text  # amp is no setting diff
    assert "(`explore/b_plain.json`) | preset | float32 | 1 |" in tta_text
    assert "(`explore/c_field.json`) | preset | bfloat16 | 1 |" in tta_text


def test_benchmarks_md_shows_the_recorded_runs():
    """BENCHMARKS.md's section 3 is what results/ gives (`python -m bench.run_all --tta-only` after a run)."""
    done = run_module("bench.run_all", "--check")
    assert done.returncode == 0, done.stderr


def test_time_to_accuracy_names_a_bad_setting():
    done = run_module("bench.time_to_accuracy", "data", "--set", "lr=fast")
    assert done.returncode == 2 and "--set lr= expects a value of type float, got 'fast'" in done.stderr


@pytest.mark.parametrize("skew, ok", [(0.0, True), (1e-3, False)])
def test_compiled_evaluator_is_timed_beside_ours_and_checked(tmp_path, skew, ok):
    """bench_eval's torchreid comparison on a stand-in `rank_cy` module (the reference loop, with its
    mAP skewed by `skew`): it is loaded from the folder given, timed, and checked to 1e-4."""
    (tmp_path / "rank_cy.py").write_text(
        "from reid.reference.evaluation import reference_cmc_map\n"
        "def evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):\n"
        "    r = reference_cmc_map(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank)\n"
        f"    return r['cmc'], r['mAP'] + {skew}\n")
    done = run_module("bench.bench_eval", "--compiled-only", "--quick", "--torchreid-cy", str(tmp_path))
    if ok:
        assert done.returncode == 0, done.stderr
        row = next(line for line in done.stdout.splitlines() if line.startswith("| quick 842 x 3978 |"))
        assert row.endswith("|") and "(of 3)" in row
        assert float(row.split("|")[-2]) < 1e-6                          # max abs diff: the same loop
    else:
        assert done.returncode == 1 and "differs from ours by 0.001" in done.stderr


def test_bench_edits_no_import_path():
    """bench/ runs as a package: no file in it edits sys.path."""
    edits = [p.name for p in (ROOT / "bench").glob("*.py") if "sys.path" in p.read_text()]
    assert edits == []
