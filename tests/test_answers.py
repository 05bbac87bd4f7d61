"""answers.md: every number in it is recomputed here from the code and the saved run files."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import torch

from reid.build import Counts
from reid.data import count_possible_triplets
from reid.model import (ModifiedResNet18, build_model, count_parameters, pooling_kernel, table1_shapes,
                        weight_mapping_report)

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = (ROOT / "answers.md").read_text()


def section(title: str) -> str:
    """The text of answers.md from the heading that starts with `## {title}` to the next `## `."""
    match = re.search(rf"^## {re.escape(title)}\b.*?(?=^## |\Z)", ANSWERS, flags=re.S | re.M)
    assert match, f"answers.md has no section '## {title}'"
    return match.group(0)


def test_q1_every_table1_row():
    text = section("Q1")
    rows = table1_shapes(ModifiedResNet18(), 128)
    assert len(rows) == 11
    for name, (c, h, w) in rows:
        assert f"| {name} | {c}×{h}×{w} |" in text
    assert text.count("\n| ") == len(rows) + 2          # header + separator + one line per row, no extra


def test_q2_pooling_kernel():
    k = pooling_kernel(ModifiedResNet18(), 128)
    assert f"**{k[0]}×{k[1]}**" in section("Q2")


def test_q4_first_resblock_parameters():
    block = ModifiedResNet18().layer1[0]
    n = count_parameters(block)
    assert n == 2 * (64 * 64 * 3 * 3) + 2 * (2 * 64)
    conv = block.conv1.weight.numel()
    assert f"**{n:,}**" in section("Q4") and f"{conv:,}" in section("Q4")


def test_q5_weight_report():
    report = weight_mapping_report(build_model("resnet18", num_ids=230))
    text = section("Q5")
    assert f"**{len(report.loaded)}**" in text
    layers = ", ".join(dict.fromkeys(n.rsplit(".", 1)[0] for n in report.not_loaded
                                     if not n.startswith("backbone.")))
    assert f"**{layers}**" in text
    dropped = ", ".join(f"{n} {list(report.shapes[n])}" for n in report.discarded)
    assert f"**{dropped}**" in text and report.discarded == ["fc.weight", "fc.bias"]


def test_q6_last_fc_size():
    n_ids = Counts().train_ids
    model = build_model("resnet18", num_ids=n_ids)
    assert model.classifier.out_features == n_ids
    assert f"**{n_ids}**" in section("Q6") and f"0…{n_ids - 1}" in section("Q6")


def test_q10_possible_triplets():
    c = Counts()
    ids = torch.arange(c.train_ids).repeat_interleave(c.per_id)
    n = count_possible_triplets(ids)
    total = c.train_ids * c.per_id
    assert f"{c.train_ids} · {c.per_id} · {c.per_id - 1} · {total - c.per_id} = **{n:,}**" in section("Q10")
    assert f"uses {total:,} of them" in section("Q10")


def table_row(name: str, values: list[float]) -> str:
    return f"| {name} | " + " | ".join(f"{v:.3f}" for v in values) + " |"


@pytest.mark.parametrize("source", ["synthetic"])
def test_results_table_matches_saved_run(source):
    path = ROOT / "results" / f"{source}.json"
    doc = json.loads(path.read_text())
    text = section("Results")
    for name, row in doc["table"].items():
        values = [row["Rank-1"], row["Rank-5"], row["Rank-10"], row["mAP"]]
        assert table_row(name, values) in text, f"answers.md lacks the {source} row for {name}"


@pytest.mark.parametrize("run,name", [("id", "ID loss + label smoothing, test-time flip (earlier preset)"),
                                      ("triplet", "triplet loss, batch-all triplets (earlier preset)"),
                                      ("strong_26ep_128x128", "stronger recipe at 128×128 (earlier preset)"),
                                      ("strong", "stronger recipe at 128×64 (today's preset)"),
                                      ("strong_60ep_128x128", "stronger recipe at 128×128, the same time (today's preset)")])
def test_market_results_match_saved_runs(run, name):
    path = ROOT / "results" / f"market_tta_{run}.json"
    assert path.is_file(), f"{path}: the recorded run answers.md quotes is missing"
    h = json.loads(path.read_text())
    values = [h["rank1"][-1], h["rank5"][-1], h["rank10"][-1], h["mAP"][-1]]
    assert table_row(name, values) in section("Results")


def test_readme_equal_time_curve_is_the_recorded_market_runs():
    """README's 20-minute curve of the stronger recipe at 128×64 against 128×128 for the same time:
    final and best val Rank-1, and the best by minute 5 / 10 / 15, from the two recorded runs; and
    the training-seed-1 pair (side by side, one thread each): final, best and mAP of each."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    runs = {size: json.loads((ROOT / "results" / f"market_tta_{name}.json").read_text())
            for size, name in (("128x64", "strong"), ("128x128", "strong_60ep_128x128"))}

    def best_by(h: dict, minutes: float) -> str:
        return f"{max(r for r, t in zip(h['rank1'], h['elapsed_seconds']) if t <= 60 * minutes):.3f}"

    by_minute = {size: " / ".join(best_by(h, m) for m in (5, 10, 15)) for size, h in runs.items()}
    assert (f"Best val Rank-1 by minute 5 / 10 / 15: {by_minute['128x64']} at 128×64 against "
            f"{by_minute['128x128']} at 128×128") in readme
    h = runs["128x128"]
    assert (f"({len(h['rank1'])} epochs, 100 ÷ 1.67; it ended at {h['elapsed_seconds'][-1] / 60:.1f} minutes; "
            f"`results/market_tta_strong_60ep_128x128.json`) ends at {h['rank1'][-1]:.3f} (best "
            f"{max(h['rank1']):.3f}, mAP {h['mAP'][-1]:.3f})") in readme
    ahead = all(best_by(runs["128x64"], m) > best_by(runs["128x128"], m) for m in range(1, 17))
    assert ahead == ("the person's shape ahead at every minute of this curve" in readme)
    seed1 = {size: json.loads((ROOT / "results" / f"market_tta_{name}_seed1.json").read_text())
             for size, name in (("128x64", "strong_100ep"), ("128x128", "strong_60ep_128x128"))}
    a, b = seed1["128x64"], seed1["128x128"]
    assert a["config"]["seed"] == b["config"]["seed"] == 1 and (len(a["rank1"]), len(b["rank1"])) == (100, 60)
    assert (f"({a['elapsed_seconds'][-1] / 60:.1f} and {b['elapsed_seconds'][-1] / 60:.1f} minutes;" in readme)
    assert (f"{a['rank1'][-1]:.3f} (best {max(a['rank1']):.3f}, mAP {a['mAP'][-1]:.3f}) at 128×64 against "
            f"{b['rank1'][-1]:.3f} (best {max(b['rank1']):.3f}, mAP {b['mAP'][-1]:.3f}) at 128×128") in readme
    both_ahead = all(x["rank1"][-1] > y["rank1"][-1] and max(x["rank1"]) > max(y["rank1"])
                     for x, y in ((runs["128x64"], runs["128x128"]), (a, b)))
    assert both_ahead == ("the person's shape is ahead on both training seeds" in readme)


def test_readme_rerank_table_is_the_recorded_market_run():
    """README's Market re-ranking table: each model's val and test Rank-1 / mAP, plain and re-ranked
    with the defaults, as results/rerank_market.json recorded them."""
    readme = (ROOT / "README.md").read_text()
    run = json.loads((ROOT / "results" / "rerank_market.json").read_text())
    for name, m in run["models"].items():
        cells = [f"{m[split][kind]['rank1']:.3f} / {m[split][kind]['mAP']:.3f}"
                 for split in ("val", "test") for kind in ("plain", "defaults")]
        row = next((line for line in readme.splitlines() if line.startswith(f"| {name},")), None)
        assert row is not None, f"README.md has no re-ranking row for {name}"
        assert [c.strip().strip("*") for c in row.split("|")[2:6]] == cells, row


SHAPE_LAYOUTS = ("market_s0", "market_s1", "m40_s0", "m40_s1", "m40_s2")


@functools.cache
def _shape_runs(layout: str, size: str) -> dict[int, dict]:
    """A layout's input-shape runs at ``size`` recorded in results/shape, {training seed: run JSON}
    (read once per test session; nothing changes them)."""
    from reid.runs import shape_run_files

    return {seed: json.loads(f.read_text())
            for seed, f in shape_run_files(ROOT / "results" / "shape", layout, size).items()}


def _shape_means(layout: str, size: str) -> tuple[float, float]:
    """(val, test) Rank-1 of a layout's input-shape runs at ``size``, last epoch, mean over the
    training seeds recorded in results/shape."""
    runs = list(_shape_runs(layout, size).values())
    assert len(runs) >= 2, f"{layout}_{size}: fewer than two training seeds recorded"
    return (sum(r["rank1"][-1] for r in runs) / len(runs), sum(r["test"]["rank1"] for r in runs) / len(runs))


def test_readme_input_shape_numbers_are_the_recorded_runs():
    """The README's equal-wall-time table: per layout, the last epoch's val and test Rank-1 of each
    shape averaged over the training seeds recorded in results/shape; the 40-identity row the mean
    of the three layouts' means."""
    readme = (ROOT / "README.md").read_text()

    def cells(means: dict[str, tuple[float, float]]) -> str:
        return (f"| {means['128x64'][0]:.3f} / {means['128x128'][0]:.3f} | "
                f"{means['128x64'][1]:.3f} / {means['128x128'][1]:.3f} |")

    for layout, row in (("market_s0", "| Market layout seed 0 (this one;"), ("market_s1", "| Market layout seed 1 (")):
        line = next((x for x in readme.splitlines() if x.startswith(row)), None)
        assert line is not None and cells({s: _shape_means(layout, s) for s in ("128x64", "128x128")}) in line, row
    small = {s: [_shape_means(f"m40_s{i}", s) for i in range(3)] for s in ("128x64", "128x128")}
    means = {s: tuple(sum(v[k] for v in vals) / 3 for k in (0, 1)) for s, vals in small.items()}
    line = next(x for x in readme.splitlines() if x.startswith("| 40 identities, mean of 3 layouts"))
    assert cells(means) in line


def test_input_shape_summary_figures_are_the_recorded_runs():
    """The figures README.md and answers.md quote about the input shape at equal wall time: layouts
    ahead, mean differences over the 5 layouts (and the Market ones), the largest seed-to-seed spread."""
    diff = {layout: [a - b for a, b in zip(_shape_means(layout, "128x64"), _shape_means(layout, "128x128"))]
            for layout in SHAPE_LAYOUTS}
    ahead = [sum(round(d[k], 3) > 0 for d in diff.values()) for k in (0, 1)]
    mean = [f"{sum(d[k] for d in diff.values()) / len(diff):+.3f}" for k in (0, 1)]
    market = [f"{(diff['market_s0'][k] + diff['market_s1'][k]) / 2:+.3f}".replace("-", "−") for k in (0, 1)]
    spreads = []
    for layout in SHAPE_LAYOUTS:
        for size in ("128x64", "128x128"):
            finals = [h["rank1"][-1] for h in _shape_runs(layout, size).values()]
            spreads.append(max(finals) - min(finals))
    readme = " ".join((ROOT / "README.md").read_text().split())
    answers = " ".join(ANSWERS.split())
    assert (f"ahead on val on {ahead[0]} of the 5 layouts and on test on {ahead[1]}; the mean over the 5 layouts is "
            f"{mean[0]} val and {mean[1]} test Rank-1 (on the two Market layouts alone {market[0]} val and "
            f"{market[1]} test)") in readme
    assert f"moves val Rank-1 by up to {max(spreads):.3f}" in readme and f"by up to {max(spreads):.3f}" in answers
    assert (f"ahead on val on {ahead[0]} of the 5 layouts and on test on {ahead[1]}, by {mean[0]} val and {mean[1]} "
            "test Rank-1 in the mean over the 5 layouts") in answers
    # the notebook types no measured number (tests/test_notebook.py): its ablation table prints the Market line


def test_readme_run_by_run_and_144x72_figures_are_the_recorded_runs():
    """The README's (and answers.md's) run-by-run comparison (pairs of the same layout and training seed) of 128×64 and
    144×72 against 128×128: counts and means recomputed here, the bootstrap intervals those of
    BENCHMARKS.md section 5 (which `run_all --check` ties to results/); 144×72's layouts ahead and
    level; the 5-layout val means that keep 128×64 the default."""
    readme = " ".join((ROOT / "README.md").read_text().split())
    bench = (ROOT / "bench" / "BENCHMARKS.md").read_text()

    def paired(size: str, split: str) -> list[float]:
        out = []
        for layout in SHAPE_LAYOUTS:
            a, b = _shape_runs(layout, size), _shape_runs(layout, "128x128")
            for seed in sorted(set(a) & set(b)):
                pick = (lambda h: h["rank1"][-1]) if split == "val" else (lambda h: h["test"]["rank1"])
                out.append(pick(a[seed]) - pick(b[seed]))
        return out

    def mean(size: str, split: str) -> str:
        d = paired(size, split)
        assert len(d) == 15, (size, split)  # 5 layouts × 3 training seeds
        return f"{sum(d) / len(d):+.3f}"

    def interval(size: str, split: str) -> str:
        head = f"- {size.replace('x', '×')} against 128×128, run by run"
        line = next(x for x in bench.splitlines() if x.startswith(head))
        return line.split(f"{split} Rank-1 ahead in ")[1].split("[")[1].split("]")[0]

    for size in ("128x64", "144x72"):
        for split in ("val", "test"):
            d = [round(v, 3) for v in paired(size, split)]
            assert f"{mean(size, split)} [{interval(size, split)}]" in readme, (size, split)
            if size == "128x64":
                ahead, behind = sum(v > 0 for v in d), sum(v < 0 for v in d)
                words = "ahead on val in" if split == "val" else "it is ahead in"
                assert f"{words} {ahead} and behind in {behind}, by {mean(size, split)} [" in readme, split
    diff = {layout: [a - b for a, b in zip(_shape_means(layout, "144x72"), _shape_means(layout, "128x128"))]
            for layout in SHAPE_LAYOUTS}
    val, test = [[round(d[k], 3) for d in diff.values()] for k in (0, 1)]
    assert (f"ahead on val on {sum(v > 0 for v in val)} of the 5 layouts and level on {sum(v == 0 for v in val)}"
            in readme)
    assert f"on test ahead on {sum(v > 0 for v in test)} (" in readme
    answers = " ".join(ANSWERS.split())
    for size in ("128x64", "144x72"):
        cells = [f"{mean(size, split)} [{interval(size, split)}] {split}" for split in ("val", "test")]
        assert f"{cells[0]} and {cells[1]}" in answers, size
    means = {s: sum(_shape_means(layout, s)[0] for layout in SHAPE_LAYOUTS) / 5 for s in ("128x64", "144x72")}
    assert means["128x64"] > means["144x72"]
    assert f"({means['128x64']:.3f} against {means['144x72']:.3f} in the mean over the 5 layouts)" in readme
    assert f"({means['144x72']:.3f} against {means['128x64']:.3f} in the mean over the 5 layouts)" in answers


def test_readme_acceptance_proxy_numbers_are_the_recorded_run():
    """The README's full-notebook run on the seed-3 Market layout: val Rank-1 / mAP of the three
    models, epochs, and pred.csv's independently scored test top-1, from results/acceptance_market_s3.json."""
    run = json.loads((ROOT / "results" / "acceptance_market_s3.json").read_text())
    readme = " ".join((ROOT / "README.md").read_text().split())
    m = run["models"]
    assert (f"ID model {m['id']['val_rank1']:.3f}, triplet model {m['triplet']['val_rank1']:.3f}, stronger recipe "
            f"{m['strong']['val_rank1']:.3f} (mAP {m['id']['val_mAP']:.3f} / {m['triplet']['val_mAP']:.3f} / "
            f"{m['strong']['val_mAP']:.3f}; {m['id']['epochs']}, {m['triplet']['epochs']} and "
            f"{m['strong']['epochs']} epochs)") in readme
    scored = run["pred_csv"]["scored_independently"]
    assert scored["missing"] == 0 and round(scored["accuracy"], 3) == run["pred_csv"]["test_top1_notebook"]
    assert f"test top-1 {scored['accuracy']:.3f} on {int(scored['n'])} queries" in readme
    assert run["layout"]["seed"] == 3 and run["test_queries"] == scored["n"] == 702


# --------------------------------------------------------------------------- Q8, Q9, Q11 as the committed run computed them
def _synthetic() -> dict:
    return json.loads((ROOT / "results" / "synthetic.json").read_text())


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_q8_quotes_the_computed_verdict():
    doc = _synthetic()
    verdict = doc["q8_verdict"].removeprefix("Verdict: ")
    assert f'"{_flat(verdict)}"' in _flat(section("Q8"))
    assert "short of training" not in section("Q8") or "still rising" in verdict


def test_q9_quotes_the_rows_shown():
    from reid.findings import row_line

    doc = _synthetic()
    text = _flat(section("Q9"))
    for i, row in enumerate(doc["q9_rows"], start=1):
        assert _flat(row_line(i, row)) in text, i


def test_q11_quotes_the_computed_comparisons():
    from reid.findings import describe_comparison

    doc = _synthetic()
    assert _flat(describe_comparison(doc["q11"])) in _flat(section("Q11"))
    for row in doc["q11"]:
        assert f"the triplet model is {row['word']}" in _flat(section("Q11"))


def test_q8_q11_and_the_synthetic_results_quote_the_saved_run():
    """The numbers of Q8, Q11 and the synthetic results section: the curves' first and last values, the
    kept epochs, the beyond table, the predictions' test scores and the activation-map shares, from
    results/synthetic.json."""
    doc = _synthetic()
    hid, htri = (doc["runs"][n]["history"] for n in ("ID loss (handout)", "triplet loss (handout)"))
    q8, q11, res = _flat(section("Q8")), _flat(section("Q11")), _flat(section("Results"))
    kept = lambda h: max(range(len(h["mAP"])), key=lambda i: (h["mAP"][i], -i)) + 1  # noqa: E731
    k = kept(hid)
    assert (f"falls from {hid['epoch_train_loss'][0]:.3f} in the first epoch (ln 230 ≈ 5.44 is a uniform guess) to "
            f"{hid['epoch_train_loss'][-1]:.3f} in the last") in q8
    assert f"falls from {hid['val_loss'][0]:.3f} to {hid['val_loss'][-1]:.3f}" in q8
    assert f"is epoch {k}: val Rank-1 {hid['rank1'][k - 1]:.3f}, Rank-10 {hid['rank10'][k - 1]:.3f}" in q8
    assert f"({hid['mAP'][k - 1]:.3f})" in q8
    assert ", ".join(f"{v:.3f}" for v in htri["rank1"]) in q11
    from reid.findings import epoch_by_epoch

    assert _flat(epoch_by_epoch(hid["rank1"], htri["rank1"])) in q11
    assert f"kept epoch {kept(htri)} (val mAP {htri['mAP'][kept(htri) - 1]:.3f})" in q11
    assert (f"{htri['epoch_train_loss'][0]:.3f} in the first epoch to {htri['epoch_train_loss'][-1]:.3f} in the last"
            in q11)
    for name, b in doc["beyond"].items():
        assert (f"| {name} | {b['Rank-1 (test-time flip)']:.3f} / {b['mAP (test-time flip)']:.3f} | "
                f"{b['Rank-1 (re-ranking)']:.3f} / {b['mAP (re-ranking)']:.3f} |") in res
    for name, row in doc["table"].items():
        assert f"| {row['epoch (kept on val mAP)']} | {row['train min']:.1f} |" in res, name
    s = doc["test_scores"]
    assert (f"top-1 accuracy {s['pred.csv']['accuracy']:.3f} on {int(s['pred.csv']['n'])} queries; `pred_beyond.csv` "
            f"(the stronger recipe): {s['pred_beyond.csv']['accuracy']:.3f}") in res
    assert f"`pred.csv` (the {doc['pred_model']} model" in res and doc["pred_model"].endswith("(handout)")
    from reid.actmap import describe_activation_maps

    shares = {name: pd.DataFrame(per_image) for name, per_image in doc["activation_maps"].items()}
    for line in describe_activation_maps(shares).replace("\n  ", " ").splitlines():   # one line per model
        assert _flat(line) in res, line


def test_readme_pretrained_start_is_the_recorded_runs():
    """README's table of what the stand-in bought, and its whole-notebook run from the stand-in, from
    results/pretrained/ (bench/BENCHMARKS.md section 7)."""
    readme = (ROOT / "README.md").read_text()
    P = ROOT / "results" / "pretrained"
    run = lambda n: json.loads((P / f"{n}.json").read_text())  # noqa: E731
    kept = lambda r: max(range(len(r["mAP"])), key=lambda i: (r["mAP"][i], -i))  # noqa: E731
    from reid.runs import START_RUNS

    for model, random_run, standin_run in START_RUNS:
        a, b = run(Path(random_run).stem), run(Path(standin_run).stem)
        ka, kb = kept(a), kept(b)
        assert (f"| {model} | {a['rank1'][ka]:.3f} / {a['mAP'][ka]:.3f} | {b['rank1'][kb]:.3f} / {b['mAP'][kb]:.3f} | "
                f"{a['test']['rank1']:.3f} / {a['test']['mAP']:.3f} | {b['test']['rank1']:.3f} / {b['test']['mAP']:.3f} | "
                f"{ka + 1}/{len(a['rank1'])} · {kb + 1}/{len(b['rank1'])} |") in readme, model
    nb = run("notebook_market_standin")
    flat = " ".join(readme.split())
    assert f"{nb['wall_minutes']:.1f} minutes in all" in flat
    sc = nb["test_scores"]
    assert (f"scores test top-1 {sc['pred.csv']['accuracy']:.3f} and `pred_beyond.csv` "
            f"{sc['pred_beyond.csv']['accuracy']:.3f} on {int(sc['pred.csv']['n'])} queries") in flat
    assert nb["pred_model"].endswith("(handout)")
