"""bench/ as its users run it (`python -m bench.…` in a subprocess; tests import nothing from bench/):
the time-to-accuracy section of BENCHMARKS.md made from run JSONs, the --set errors of
time_to_accuracy, bench_eval's check of torchreid's compiled evaluator, sections 5 and 6 (input shape,
re-ranking) and the re-ranking measurement on checkpoints (bench.rerank_market)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from reid.train import TrainConfig

ROOT = Path(__file__).resolve().parent.parent


IN_PROCESS = {"bench.run_all": "main", "bench.time_to_accuracy": "main", "bench.rerank_market": "main",
              "bench.bench_eval": "cli", "bench.bench_train": "cli"}
"""Tools whose command line is a function of argv: run in this process (no second start of Python and torch,
a few seconds each); any other through ``python -m``."""


def run_module(*args: str) -> subprocess.CompletedProcess:
    """`python -m ARGS` from the repository root: its exit code, stdout and stderr."""
    if args[0] not in IN_PROCESS:
        return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    import contextlib
    import importlib
    import io
    import os
    import traceback

    out, err, code, cwd, threads = io.StringIO(), io.StringIO(), 0, os.getcwd(), torch.get_num_threads()
    try:
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            result = getattr(importlib.import_module(args[0]), IN_PROCESS[args[0]])(list(args[1:]))
            code = result if isinstance(result, int) else 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except Exception:  # what `python -m` would print, and its exit status
        err.write(traceback.format_exc())
        code = 1
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())


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
    assert "| 0.700 (epoch 3) | 0.200 | ≥ 0.72 |" in main  # 0.7 came after 20 minutes
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
    """bench_eval's torchreid comparison on a stand-in `rank_cy` module (our evaluator behind torchreid's
    numpy signature, its mAP skewed by `skew`; the reference loop's agreement with ours is
    tests/test_evaluate.py's): it is loaded from the folder given, timed, and checked to 1e-4."""
    (tmp_path / "rank_cy.py").write_text(
        "import torch\n"
        "from reid.evaluate import cmc_map_from_distances\n"
        "def evaluate_cy(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):\n"
        "    labels = (torch.from_numpy(a) for a in (q_pids, g_pids, q_camids, g_camids))\n"
        "    r = cmc_map_from_distances(torch.from_numpy(distmat), *labels, max_rank=max_rank)\n"
        f"    return r['cmc'].numpy(), r['mAP'] + {skew}\n")
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


def test_bench_train_shapes_prints_each_shape_against_the_square():
    """`bench_train --shapes`: one row per shape, 128×128 first at 1.00× with the base epochs, the
    FLOPs of a training image (the person's 128×64 half the square's); no speed is asserted."""
    done = run_module("bench.bench_train", "--shapes", "128x64", "--quick", "--base-epochs", "18", "--pk", "2x2")
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| 128×")]
    assert [r[0].strip() for r in rows] == ["128×128", "128×64"]
    assert [c.strip() for c in rows[0][1:]] == ["1.00×", "5.89", "18"]
    assert rows[1][2].strip() == "2.95"
    speed = float(rows[1][1].strip(" ×"))  # printed to 2 decimals; the epochs are int(18 × the unrounded speed)
    assert int(18 * (speed - 0.005)) <= int(rows[1][3]) <= int(18 * (speed + 0.005))
    done = run_module("bench.bench_train", "--shapes", "128X64x")
    assert done.returncode == 2 and "--shapes: --set input_size= expects a size HxW such as 128x64" in done.stderr


def _shape_run(path: Path, rank1: list[float], mAP: float, minutes: float, test: dict | None = None) -> None:
    n = len(rank1)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"rank1": rank1, "mAP": [mAP] * n,
                                "elapsed_seconds": [minutes * 60 * (i + 1) / n for i in range(n)],
                                **({"test": test} if test else {})}))


def test_shape_section_pairs_each_layout_and_averages_the_40_id_seeds(tmp_path):
    """Section 5: one row per layout and shape, the mean over the training seeds recorded (seed 0 in
    <layout>_<shape>.json, others in _seed<S>.json; other names ignored), test numbers where every
    seed has them, the 40-identity means, and the count of layouts on which 128×64 is ahead per
    measure, each layout compared over the seeds both shapes have (a layout missing a shape is named
    and not counted)."""
    shape = tmp_path / "shape"
    _shape_run(shape / "market_s0_128x64.json", [0.2, 0.6, 0.7], 0.8, 10.0, {"rank1": 0.5, "mAP": 0.6, "queries": 700})
    _shape_run(shape / "market_s0_128x64_seed1.json", [0.2, 0.6, 0.6], 0.7, 11.0, {"rank1": 0.4, "mAP": 0.5, "queries": 700})
    _shape_run(shape / "market_s0_128x64_old.json", [0.9], 0.9, 1.0)         # not a run of the section
    _shape_run(shape / "market_s0_128x128.json", [0.2, 0.65], 0.7, 10.5, {"rank1": 0.45, "mAP": 0.5, "queries": 700})
    _shape_run(shape / "market_s0_128x128_seed1.json", [0.2, 0.65], 0.75, 10.5)  # no test numbers
    _shape_run(shape / "market_s1_128x64.json", [0.1, 0.9], 0.9, 10.0)          # seed 0 only at 128×64 ...
    _shape_run(shape / "market_s1_128x64_seed2.json", [0.1, 0.5], 0.5, 10.0)
    _shape_run(shape / "market_s1_128x128_seed2.json", [0.1, 0.6], 0.6, 10.0)   # ... so compared on seed 2
    for s, (a, b) in enumerate([(0.5, 0.4), (0.3, 0.35), (0.7, 0.7)]):
        _shape_run(shape / f"m40_s{s}_128x64.json", [0.1, a], 0.5, 4.0)
        if s < 2:
            _shape_run(shape / f"m40_s{s}_128x128.json", [0.1, b], 0.4, 4.0)
    _shape_run(shape / "m40_s0_144x72.json", [0.1, 0.45], 0.45, 4.1)           # an extra arm, one layout
    done = run_module("bench.run_all", "--section", "5", str(tmp_path))
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert "| 230 ids, Market layout seed 0 | 128×64, the person | 3 | 10.5 | 2 | 0: 0.700, 1: 0.600 | 0.650 | " \
           "0.750 | 0.450 | 0.550 (700) |" in text
    assert "| 230 ids, Market layout seed 0 | 128×128, C2's padded square | 2 | 10.5 | 2 | 0: 0.650, 1: 0.650 | " \
           "0.650 | 0.725 | not recorded for 1 of 2 | |" in text
    assert "| 128×128, C2's padded square | 2 | 10.0 | 1 | 2: 0.600 | 0.600 | 0.600 | not recorded for 1 of 1 | |" in text
    assert "| 40 ids, layout seed 2 | 128×128, C2's padded square | not recorded |" in text
    assert "40 ids, mean of the 3 layouts | 128×128" not in text                 # one layout lacks it
    assert "| 40 ids, mean of the 3 layouts | 128×64, the person | | | | | 0.500 | 0.500 |  |  |" in text
    # layouts compared: market_s0 (0.650 vs 0.650), market_s1 on seed 2 (0.5 vs 0.6), m40_s0, m40_s1
    assert ("- 128×64 against 128×128, val Rank-1 (mean over the training seeds both have): ahead on 1 of 4 "
            "layouts, level on 1, behind on 2; by -0.100 to +0.100 (mean over the layouts -0.013).") in text
    assert "val mAP (mean over the training seeds both have): ahead on 3 of 4 layouts, level on 0, behind on 1" in text
    assert "test Rank-1 (mean" not in text              # no compared layout has test numbers for both shapes
    assert "another training seed: final val Rank-1 differs by 0.000 to 0.400 (max − min over the seeds, 3 layout" in text
    # run by run: market_s0 seeds 0 and 1 (+0.05, -0.05), market_s1 seed 2 (-0.1), m40_s0 (+0.1), m40_s1 (-0.05)
    line = next(x for x in text.splitlines() if x.startswith("- 128×64 against 128×128, run by run"))
    head = "val Rank-1 ahead in 2 of 5, level in 0, behind in 3, mean -0.010 ["
    assert head in line
    lo, hi = (float(v) for v in line.split(head)[1].split("]")[0].split(","))
    assert -0.1 <= lo < -0.010 < hi <= 0.1                    # a bootstrap interval of the mean lies within the values
    assert "| all 5 layouts, mean | 128×64, the person | | | | | 0.570 | 0.590 |  |  |" in text
    assert "all 5 layouts, mean | 128×128" not in text         # m40_s2 lacks it
    assert "test Rank-1" not in line                            # one pair only has test numbers for both
    # the extra 144×72 arm: its row, its comparison with 128×128 on the one layout it has
    assert "| 40 ids, layout seed 0 | 144×72, the person enlarged 1.125× | 2 | 4.1 | 1 | 0: 0.450 | 0.450 |" in text
    assert "| 230 ids, Market layout seed 0 | 144×72, the person enlarged 1.125× | not recorded |" in text
    assert ("- 144×72 against 128×128, val Rank-1 (mean over the training seeds both have): ahead on 1 of 1 layouts, "
            "level on 0, behind on 0; by +0.050 to +0.050") in text
    assert "- 144×72 against 128×128, run by run" not in text   # one pair: no interval


@pytest.fixture(scope="module")
def rerank_run(tmp_path_factory, data) -> dict:
    """`python -m bench.rerank_market` on a checkpoint of a (barely) trained ResNet-18 ReIDNet."""
    from make_data import build_synthetic
    from reid.model import build_model
    from reid.train import train_model

    from reid.data import IDLossDataset, RetrievalDataset

    tmp = tmp_path_factory.mktemp("rerank")
    root = build_synthetic(tmp / "d", seed=0, train_ids=8, val_ids=5, test_ids=5, per_id=4)
    torch.manual_seed(0)
    model = build_model("resnet18", num_ids=data["id"].num_ids)
    cfg = TrainConfig.handout_id(epochs=1, batch_size=8, max_iters_per_epoch=1, amp=False)
    hist_id = train_model(model, cfg, IDLossDataset(root / "train_idloss.csv", root), RetrievalDataset(root, "val"),
                          IDLossDataset(root / "val_idloss.csv", root), checkpoint_dir=tmp / "id", progress=False)
    # the stronger recipe: BNNeckNet at the person's 128×64, cosine distance, test-time flip
    shape = dict(image_size=(128, 64))
    strong = build_model("resnet18", num_ids=data["id"].num_ids, head="bnneck", input_size=(128, 64))
    cfg_s = TrainConfig.strong(epochs=1, p=4, k=2, warmup_epochs=0, max_iters_per_epoch=1, amp=False)
    hist_s = train_model(strong, cfg_s, IDLossDataset(root / "train_idloss.csv", root, **shape),
                         RetrievalDataset(root, "val", **shape), IDLossDataset(root / "val_idloss.csv", root, **shape),
                         checkpoint_dir=tmp / "strong", progress=False)
    out = tmp / "results" / "rerank_market.json"
    done = run_module("bench.rerank_market", str(root), f"handout ID={tmp / 'id' / 'last.pt'}",
                      f"stronger={tmp / 'strong' / 'last.pt'}", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return {"root": root, "ckpt": tmp / "id" / "last.pt", "out": out, "json": json.loads(out.read_text()),
            "histories": {"handout ID": hist_id, "stronger": hist_s}, "stdout": done.stdout}


def test_rerank_market_measures_the_checkpoint_as_it_was_validated(rerank_run):
    """The plain val and test numbers are retrieve()'s on the model rebuilt from the checkpoint (test
    ground truth from test_gt.csv); the re-ranked ones are Retrieval.rerank's; the choice is the grid
    point with the best mean val mAP."""
    from reid.data import RetrievalDataset
    from reid.evaluate import retrieve
    from reid.model import build_model
    from reid.predict import query_key

    r, root = rerank_run["json"], rerank_run["root"]
    state = torch.load(rerank_run["ckpt"], map_location="cpu", weights_only=True)
    model = build_model("resnet18", num_ids=state["model"]["classifier.weight"].shape[0])
    model.load_state_dict(state["model"])
    model.eval()
    val, test = RetrievalDataset(root, "val"), RetrievalDataset(root, "test")
    gt_rows = [line.split(",") for line in (root / "test_gt.csv").read_text().splitlines()[1:]]
    gallery_of = {query_key(q): int(Path(g).stem) for q, g in gt_rows}
    test.gt = torch.tensor([gallery_of[query_key(q)] for q in test.query_paths])
    with torch.no_grad():
        rv, rt = retrieve(model, val), retrieve(model, test)
    m = r["models"]["handout ID"]
    assert m["recipe"] == "id" and m["input_size"] == [128, 128] and m["metric"] == "euclidean"
    for split, got in (("val", rv), ("test", rt)):
        want = got.metrics()
        assert m[split]["plain"] == pytest.approx({k: want[k] for k in ("rank1", "rank5", "rank10", "mAP")}, abs=1e-9)
        reranked = got.rerank().metrics()
        assert m[split]["defaults"]["mAP"] == pytest.approx(reranked["mAP"], abs=1e-9)
    grid = m["val"]["grid"]
    assert len(grid) == 6 * 3 * 5
    means = {key: sum(mm["val"]["grid"][key]["mAP"] for mm in r["models"].values()) / 2 for key in grid}
    assert means[",".join(str(v) for v in r["chosen_on_val"])] == max(means.values())
    assert r["sizes"] == {"val": {"queries": len(val.queries), "gallery": len(val.gallery)},
                          "test": {"queries": len(test.queries), "gallery": len(test.gallery)}}


@pytest.mark.parametrize("name, shape, metric", [("handout ID", [128, 128], "euclidean"),
                                                 ("stronger", [128, 64], "cosine")])
def test_rerank_market_plain_numbers_are_the_runs_own_validation(rerank_run, name, shape, metric):
    """Each model is measured as its training run validated it (shape, metric, flip, precision):
    the plain val numbers are the run's last validation."""
    m, h = rerank_run["json"]["models"][name], rerank_run["histories"][name]
    assert m["input_size"] == shape and m["metric"] == metric and m["precision"] == "float32"
    assert m["flip_test"] == (name == "stronger")
    for key in ("rank1", "rank5", "rank10", "mAP"):
        assert m["val"]["plain"][key] == pytest.approx(getattr(h, key)[-1], abs=1e-6), key


@pytest.mark.parametrize("val_gain, test_gain, replace", [(0.02, 0.01, True), (0.02, 0.004, False),
                                                          (0.004, 0.02, False), (0.02, -0.01, False)])
def test_rerank_choice_needs_a_gain_on_val_and_on_test(val_gain, test_gain, replace):
    """choose(): the grid point with the best mean val mAP; it replaces the defaults only when it
    gains more than the margin (0.005) in mean mAP on val and again on test."""
    from bench.rerank_market import choose

    def model(a, b):
        return {"val": {"defaults": {"mAP": 0.5}, "grid": {"20,6,0.3": {"mAP": 0.5}, "5,6,0.1": {"mAP": 0.5 + a},
                                                           "10,3,0.0": {"mAP": 0.5 + a / 2}}},
                "test": {"defaults": {"mAP": 0.4}, "chosen": {"mAP": 0.4 + b}}}

    out = choose({"x": model(val_gain * 2, test_gain), "y": model(0.0, test_gain)})
    assert list(out["params"]) == [5, 6, 0.1] and out["replace_defaults"] is replace
    assert out["test_mean_mAP_gain"] == pytest.approx(test_gain)


def test_rerank_section_reads_the_recorded_run(rerank_run):
    done = run_module("bench.run_all", "--section", "6", str(rerank_run["out"].parent))
    assert done.returncode == 0, done.stderr
    m = rerank_run["json"]["models"]["handout ID"]
    p = m["val"]["plain"]
    assert "features in float32" in done.stdout
    assert (f"| handout ID (128×128, euclidean, 1 epochs) | val | {p['rank1']:.3f} / {p['rank5']:.3f} / "
            f"{p['rank10']:.3f} | {p['mAP']:.3f} |") in done.stdout
    assert ("It replaces the defaults." in done.stdout) == rerank_run["json"]["replace_defaults"]


def test_rerank_market_names_a_layout_without_test_ground_truth(rerank_run, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(rerank_run["root"], root)
    (root / "test_gt.csv").unlink()
    done = run_module("bench.rerank_market", str(root), f"a={rerank_run['ckpt']}", "--out", str(tmp_path / "o.json"))
    assert done.returncode != 0 and f"{root / 'test_gt.csv'}: no test ground truth" in done.stderr


def test_time_to_accuracy_scores_the_kept_model_on_test(rerank_run, tmp_path):
    """--test: the kept epoch's model (best.pt; one epoch, so also the last) scored on the test split
    against test_gt.csv, as validation ranks (the stronger recipe: 128×64, cosine, test-time flip)."""
    from reid.data import RetrievalDataset
    from reid.evaluate import retrieve
    from reid.model import build_model
    from reid.predict import test_ground_truth

    root, out = rerank_run["root"], tmp_path / "tta.json"
    done = run_module("bench.time_to_accuracy", str(root), "--recipe", "strong", "--epochs", "1", "--quiet",
                      "--set", "p=4", "--set", "k=2", "--set", "warmup_epochs=0", "--set", "max_iters_per_epoch=1",
                      "--set", "amp=false", "--set", "input_size=128x64", "--checkpoint-dir", str(tmp_path / "ck"),
                      "--test", "--test-every-epoch", "--out", str(out))
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    got = record["test"]
    state = torch.load(tmp_path / "ck" / "best.pt", map_location="cpu", weights_only=True)
    model = build_model("resnet18", num_ids=state["model"]["classifier.weight"].shape[0], head="bnneck",
                        input_size=(128, 64))
    model.load_state_dict(state["model"])
    test = RetrievalDataset(root, "test", image_size=(128, 64))
    test.gt = test_ground_truth(root, test)
    with torch.no_grad():
        want = retrieve(model.eval(), test, flip=True, metric="cosine").metrics()
    assert got == pytest.approx({**{k: want[k] for k in ("rank1", "rank5", "rank10", "mAP")}, "epoch": 1,
                                 "queries": len(test.queries), "gallery": len(test.gallery)}, abs=1e-9)
    (epoch1,) = record["test_per_epoch"]   # --test-every-epoch: the same model, each query's rank too
    assert epoch1["rank1"] == pytest.approx(want["rank1"], abs=1e-6) and len(epoch1["match_rank"]) == len(test.queries)
    assert "test_last" not in json.loads(out.read_text())  # the kept epoch is the last one
    assert f"Test (kept epoch 1, {len(test.queries)} queries" in done.stdout


def test_time_to_accuracy_test_needs_test_ground_truth(rerank_run, tmp_path):
    root = tmp_path / "d"
    shutil.copytree(rerank_run["root"], root)
    (root / "test_gt.csv").unlink()
    done = run_module("bench.time_to_accuracy", str(root), "--recipe", "strong", "--test")
    assert done.returncode == 2 and f"{root / 'test_gt.csv'} does not exist" in done.stderr
    done = run_module("bench.time_to_accuracy", str(rerank_run["root"]), "--recipe", "strong", "--test-every-epoch")
    assert done.returncode == 2 and "--test-every-epoch needs --test" in done.stderr


def test_gpu_check_skips_without_cuda_and_runs_every_stage_dry(tmp_path, monkeypatch):
    """bench/gpu_check.py: where no CUDA device exists it says so (a JSON that says "skipped"); with
    --cpu-dry-run every stage runs on the CPU and the JSON holds each (tiny models stand in for ResNet-18,
    whose float16 is emulated and slow on a CPU)."""
    from conftest import TinyBackbone
    from bench import gpu_check
    from reid.model import BNNeckNet, ReIDNet

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would measure it")
    skipped = gpu_check.main([str(tmp_path / "skip.json")])
    assert skipped == {"skipped": json.loads((tmp_path / "skip.json").read_text())["skipped"]}
    assert "no CUDA device here" in skipped["skipped"]

    def tiny(arch, num_ids, head="reid", input_size=None):
        return (BNNeckNet if head == "bnneck" else ReIDNet)(TinyBackbone(), num_ids=num_ids)

    monkeypatch.setattr(gpu_check, "build_model", tiny)
    out = tmp_path / "dry.json"
    data = gpu_check.main([str(out), "--cpu-dry-run"])
    assert json.loads(out.read_text()) == data
    assert set(data) == {"device", "data_minutes", "step_speed_chosen", "step_speed_float16_forced", "models",
                         "total_minutes"}
    forced = data["step_speed_float16_forced"]
    assert all(forced[m]["precision"] == "float16 autocast + GradScaler + fused Adam" and forced[m]["images_per_s"] > 0
               for m in ("id", "triplet", "strong"))
    models = data["models"]
    assert all(models[m]["epochs"] == 2 and 0 <= models[m]["kept_val_rank1"] <= 1 for m in ("id", "triplet", "strong"))
    assert models["pred.csv"]["model"] in ("id", "triplet") and models["pred.csv"]["missing"] == 0


def _ceiling_run(path: Path, maps: list[float], test_maps: list[float], schedule: str, ranks: list[list[int]],
                 epochs: int) -> None:
    cfg = TrainConfig.handout_id(epochs=epochs, schedule=schedule)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"config": cfg.to_dict(), "mAP": maps, "rank1": maps, "kept_epoch": None,
                                "test_per_epoch": [{"rank1": sum(r == 1 for r in q) / len(q), "mAP": t,
                                                    "match_rank": q} for t, q in zip(test_maps, ranks)]}))


def test_ceiling_section_compares_the_rules_on_hand_made_runs(tmp_path):
    """Section 8 from hand-made runs: the kept epoch by the best val mAP and by its 3-epoch mean, the curve
    rule against today's budget query by query on test, and which handout model each pred.csv rule picks."""
    from bench.ceiling_report import ceiling_section, kept_epoch, kept_rule_table, load_runs, pred_rule_table

    curve = [0.1, 0.5, 0.1, 0.40, 0.44, 0.40, 0.2]
    assert kept_epoch(curve) == 2                 # a spike is the best epoch
    assert kept_epoch(curve, "smoothed") == 5     # (0.40 + 0.44 + 0.40) / 3 is the best mean with its neighbours
    hit, miss = [1] * 20, [2] * 20
    _ceiling_run(tmp_path / "id_synthetic_curve.json", curve, [0.1, 0.2, 0.2, 0.3, 0.4, 0.3, 0.2],
                 "curve", [miss, miss, miss, hit, hit, hit, miss], 40)
    _ceiling_run(tmp_path / "id_synthetic_today.json", [0.1, 0.3, 0.35], [0.1, 0.3, 0.3], "cosine",
                 [miss, hit, hit], 3)
    _ceiling_run(tmp_path / "triplet_synthetic_curve.json", [0.2, 0.3], [0.2, 0.25], "curve", [miss, hit], 4)
    runs = load_runs(tmp_path)
    rows, better = kept_rule_table(runs)
    assert better == "smoothed" and "| `id_synthetic_curve` | 2 · 5 | 0.200 · 0.400 |" in "\n".join(rows)
    picks = pred_rule_table(runs)[2]
    assert "| synthetic |" in picks and picks.count("id (test") == 1 and picks.count("triplet (test") == 1
    text = ceiling_section(tmp_path)
    assert "| ID model (handout) | synthetic | +0.150 | -1.000 | behind [-1.000, -1.000] | 7 · 3 |" in text
    assert ("The rule with the higher mean test mAP over these 3 runs: **smoothed** — too few runs to change the "
            "notebook's rule (the best epoch).") in text


def test_a_run_cut_by_its_wall_budget_says_so(tmp_path):
    """A ceiling run stopped by the experiment's --minutes budget before its curve rule or ceiling is named as
    such in section 8's table, with where its curve stood; empty comparisons say they are not recorded."""
    from bench.ceiling_report import ceiling_section

    cfg = TrainConfig.strong(epochs=40, schedule="curve", time_budget_s=600.0)
    (tmp_path / "strong_synthetic_curve.json").write_text(json.dumps(
        {"config": cfg.to_dict(), "mAP": [0.5, 0.6, 0.7], "rank1": [0.4, 0.5, 0.6], "elapsed_seconds": [200, 400, 610],
         "test_per_epoch": [{"rank1": 0.5, "mAP": 0.6, "match_rank": [1, 2]}] * 3}))
    text = ceiling_section(tmp_path)
    assert "| 3 / 40 | the experiment's 10-minute wall budget, its curve rising |" in text
    assert "Not recorded yet: no pair of a curve run and a today run of one model and prior." in text
    assert "over the 1 run: **best** — too few runs" in text


def test_speed_section_names_each_machine(tmp_path):
    from bench.speed_report import slug, speed_section

    assert slug("CPU: AMD EPYC, 2 cores, no bfloat16 in hardware") == "amd-epyc-no-bf16"
    assert slug("CPU: Intel Xeon Platinum 8488C, 2 cores, bfloat16 in hardware") == "intel-xeon-platinum-8488c-bf16"
    rows = [{"recipe": r, "input": [128, 128], "images_a_step": 64, "seconds_a_step": 2.0, "images_per_s": 32.0,
             "precision": "float32"} for r in ("id", "triplet", "strong")]
    (tmp_path / "recipes_float32_x.json").write_text(json.dumps({"machine": "CPU: X, 2 cores, no bfloat16 in hardware",
                                                                  "threads": 2, "recipes": rows}))
    (tmp_path / "notebook_x.json").write_text(json.dumps({"machine": "CPU: X, 2 cores, no bfloat16 in hardware",
                                                           "precision": "float32", "data": "synthetic",
                                                           "start": "random", "minutes": 52.04,
                                                           "training_minutes": [14.0, 18.5, 13.25]}))
    text = speed_section(tmp_path)
    assert ("| CPU: X, 2 cores, no bfloat16 in hardware | float32 | 32.0 (2.00 s, 128×128) | 32.0 (2.00 s, 128×128) | "
            "32.0 (2.00 s, 128×128) | 2 |") in text
    assert "| CPU: X, 2 cores, no bfloat16 in hardware | float32 | synthetic | random | 52.0 | 14.0 · 18.5 · 13.2 |" in text
