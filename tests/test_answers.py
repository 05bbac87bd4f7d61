"""answers.md and the notebook's answers: written from the saved run, recomputed where they can be, and held
to what a grader needs (one screen an answer, no claim its own numbers contradict); README's quoted runs."""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

import pytest
import torch

from reid.answers import (MAX_LINES, QUESTIONS, answer_text, conclusion, q1_lines, q2_lines, q3_lines,
                          q4_lines, q5_lines, q6_lines, q10_lines, q11_lines, write_answers_md)
from reid.build import Counts
from reid.data import count_possible_triplets
from reid.model import ModifiedResNet18, build_model, pooling_kernel, table1_shapes, weight_mapping_report
from reid.train import History, TrainConfig

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = (ROOT / "answers.md").read_text()
NOTEBOOK_WIDTH = 100   # the notebook prints at reid.text's default width (the unit tests run at 60)


@functools.lru_cache(maxsize=1)
def _synthetic() -> dict:
    return json.loads((ROOT / "results" / "synthetic.json").read_text())


@functools.lru_cache(maxsize=1)
def _notebook() -> tuple[str, str]:
    """(every stream output of the committed notebook, every markdown cell), each joined."""
    nb = json.loads((ROOT / "assignment.ipynb").read_text())
    join = lambda v: v if isinstance(v, str) else "".join(v)  # noqa: E731
    out = "\n".join(join(o.get("text", "")) for c in nb["cells"] if c["cell_type"] == "code"
                    for o in c.get("outputs", []) if o.get("output_type") == "stream")
    md = "\n\n".join(join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    return out, md


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_answers_md_is_written_from_the_saved_run(tmp_path):
    """answers.md is `python -m reid.answers`'s output for results/synthetic.json, byte for byte."""
    written = write_answers_md(_synthetic(), tmp_path / "answers.md", ROOT)
    assert written == ANSWERS, "answers.md differs from what python -m reid.answers writes: run it again"


def test_every_answer_is_what_the_notebook_printed_under_its_heading():
    out, _ = _notebook()
    answers = _synthetic()["answers"]
    assert list(answers) == list(QUESTIONS)
    for q, lines in answers.items():
        assert answer_text(q, lines, NOTEBOOK_WIDTH) in out, q


def test_every_answer_fits_six_lines_of_a_hundred_characters():
    for q, lines in _synthetic()["answers"].items():
        printed = answer_text(q, lines, NOTEBOOK_WIDTH).splitlines()
        assert len(printed) <= MAX_LINES and all(len(line) <= NOTEBOOK_WIDTH for line in printed), q


def test_q11_fits_six_lines_with_a_large_layouts_numbers():
    ranks = {"id_rank1": 0.8765, "triplet_rank1": 0.8721}
    rows = [{"when": "after the same number of epochs", "word": "behind", "difference": -0.123, **ranks,
             "id_epoch": 14, "triplet_epoch": 14},
            {"when": "after about the same number of training images", "word": "ahead", "difference": 0.101, **ranks,
             "id_epoch": 42, "triplet_epoch": 14},
            {"when": "as kept (the tables)", "word": "level", "difference": -0.004, **ranks,
             "id_epoch": 117, "triplet_epoch": 58}]
    h = History(active_triplets=[0.987, 0.123], epoch_train_loss=[1.012, 0.345], val_loss=[1.234, 0.567],
                rank1=[0.8123, 0.8721], mAP=[0.8234, 0.8812])
    text = answer_text("Q11", q11_lines(rows, h, TrainConfig.handout_id(), TrainConfig.handout_triplet(),
                                        206_976, 620_928), NOTEBOOK_WIDTH)
    assert len(text.splitlines()) <= MAX_LINES


def test_the_static_answers_are_recomputed_from_the_model_and_the_data():
    answers = _synthetic()["answers"]
    backbone = ModifiedResNet18()
    kernel = pooling_kernel(backbone, 128)
    assert answers["Q1"] == q1_lines(table1_shapes(backbone, 128), (128, 128))
    assert answers["Q2"] == q2_lines(kernel) and kernel == (8, 8)
    assert answers["Q3"] == q3_lines(512, kernel, 512)
    assert answers["Q4"] == q4_lines(backbone.layer1[0]) and "73,984" in answers["Q4"][0]
    loaded = next(iter(_synthetic()["runs"].values()))["config"]["start"] != "random"   # did C6 load a file
    assert answers["Q5"] == q5_lines(weight_mapping_report(build_model("resnet18", num_ids=230)), loaded=loaded)
    assert ("none did in this run" in answers["Q5"][0]) == (not loaded)
    c = Counts()
    assert answers["Q6"] == q6_lines(c.train_ids, c.train_ids)
    ids = torch.arange(c.train_ids).repeat_interleave(c.per_id)
    assert answers["Q10"] == q10_lines(count_possible_triplets(ids), [c.per_id] * c.train_ids)
    assert "47,403,000" in answers["Q10"][0]


def test_q8_q11_conclude_from_the_saved_histories():
    doc = _synthetic()
    hid = History.from_dict(doc["runs"]["ID loss (handout)"]["history"])
    word, reason = conclusion(hid, 230)
    assert doc["answers"]["Q8"][0] == f"{word} — {reason}."
    for row in doc["q11"]:
        assert f"{row['word']}" in doc["answers"]["Q11"][1]
    tri = History.from_dict(doc["runs"]["triplet loss (handout)"]["history"])
    assert f"{100 * tri.active_triplets[0]:.0f} % in epoch 1" in doc["answers"]["Q11"][2]


OVERFIT = re.compile(r"overfit\w*", re.I)


def test_no_overfitting_claimed_of_a_run_whose_verdict_is_under_trained():
    """Where Q8 concludes "under-trained", no text of the run says a model overfits: every "overfit" is
    negated ("not overfitting") or general (the rule that defines it)."""
    doc = _synthetic()
    if not doc["answers"]["Q8"][0].startswith("under-trained"):
        pytest.skip("this run's Q8 is not under-trained")
    out, md = _notebook()
    for name, text in (("answers.md", ANSWERS), ("the notebook's outputs", out)):
        for m in OVERFIT.finditer(text):
            before = text[max(0, m.start() - 30): m.start()]
            assert re.search(r"\bnot\b|\bno\b|\bwhen\b|\bnor\b|\bor\b", before), (name, text[m.start() - 80: m.end() + 40])


def test_the_overfit_check_catches_a_claim():
    claim = "the model overfits its training images"
    assert any(not re.search(r"\bnot\b", claim[max(0, m.start() - 30): m.start()]) for m in OVERFIT.finditer(claim))


def test_to_the_letter_is_qualified_by_the_start():
    """The handout's models are "to the letter" only with C6's ImageNet weights: wherever a text says so,
    the same paragraph says it depends on them."""
    _, md = _notebook()
    readme = (ROOT / "README.md").read_text()
    for name, text in (("the notebook", md), ("README", readme), ("answers.md", ANSWERS)):
        for para in re.split(r"\n\s*\n", text):
            if "to the letter" in para:
                assert "ImageNet" in para or "C6" in para, (name, para[:200])


NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?![\w.])")


def test_every_decimal_in_answers_md_is_in_the_run_or_its_records():
    """A number answers.md shows is printed in the committed notebook's outputs, or is a recorded results
    file's value at the precision shown (0.329 for 0.32862...)."""
    out, _ = _notebook()
    known = set(NUMBER.findall(out))
    for path in (ROOT / "results").rglob("*.json"):
        for x in re.findall(r"-?\d+\.\d+(?:e-?\d+)?", path.read_text()):
            v = float(x)
            known.update({f"{v:.1f}", f"{v:.2f}", f"{v:.3f}"})
    missing = [m.group(0) for m in NUMBER.finditer(ANSWERS) if m.group(0) not in known]
    assert not missing, missing


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
    assert (f"ahead on val on {ahead[0]} of the 5 layouts and on test on {ahead[1]}; the mean over the 5 layouts is "
            f"{mean[0]} val and {mean[1]} test Rank-1 (on the two Market layouts alone {market[0]} val and "
            f"{market[1]} test)") in readme
    assert f"moves val Rank-1 by up to {max(spreads):.3f}" in readme
    # answers.md points to BENCHMARKS for the recorded Market runs instead of quoting them (issue 30)
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
    means = {s: sum(_shape_means(layout, s)[0] for layout in SHAPE_LAYOUTS) / 5 for s in ("128x64", "144x72")}
    assert means["128x64"] > means["144x72"]
    assert f"({means['128x64']:.3f} against {means['144x72']:.3f} in the mean over the 5 layouts)" in readme


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


def test_readme_committed_run_tables_are_the_results_file():
    """README's tables of the committed notebook run are results/synthetic.json, as the run saved it: each
    model's kept-epoch row, the flip and re-ranking columns, and the test scores of pred.csv."""
    readme = (ROOT / "README.md").read_text()
    doc = _synthetic()
    for name, r in doc["table"].items():
        assert (f"| {name} | {r['Rank-1']:.3f} | {r['Rank-5']:.3f} | {r['Rank-10']:.3f} | {r['mAP']:.3f} | "
                f"{r['epoch (kept on val mAP)']} | {r['train min']:.1f} |") in readme, name
    for name, b in doc["beyond"].items():
        cells = [f"{b[f'Rank-1 ({c})']:.3f} / {b[f'mAP ({c})']:.3f}" for c in ("test-time flip", "re-ranking")]
        assert f"| {name} | {cells[0]} | {cells[1]} |" in readme, name
    flat = " ".join(readme.split())
    scores = doc["test_scores"]
    assert f"`pred.csv` holds the predictions of the {doc['pred_model']} model" in flat
    assert f"scores test top-1 {scores[doc['pred_model']]['rank1']:.3f}" in flat
