"""The committed assignment.ipynb as a grader reads it: one top-to-bottom execution of today's cells, outputs
that fit a screen, no measured number typed into the prose, and the handout's answers where it asks.

These read the committed file; `make test` also runs the notebook itself under nbval (quick mode).
"""
from __future__ import annotations

import json
import re
from pathlib import Path


from reid.record import STAMP_KEY, notebook_inputs, source_hash

ROOT = Path(__file__).resolve().parent.parent
NB = json.loads((ROOT / "assignment.ipynb").read_text(encoding="utf-8"))
CODE = [c for c in NB["cells"] if c["cell_type"] == "code"]
MARKDOWN = [c for c in NB["cells"] if c["cell_type"] == "markdown"]
LINE_WIDTH, MAX_ROWS, MAX_COLUMNS, MAX_LABEL = 100, 20, 8, 40


def text(cell: dict, key: str = "source") -> str:
    value = cell.get(key, "")
    return value if isinstance(value, str) else "".join(value)


def outputs(cell: dict) -> list[dict]:
    return cell.get("outputs", [])


def streams(cell: dict) -> str:
    return "".join(text(o, "text") for o in outputs(cell) if o.get("output_type") == "stream")


def cell_with(marker: str) -> dict:
    found = [c for c in CODE if marker in text(c)]
    assert len(found) == 1, f"expected one code cell holding {marker!r}, found {len(found)}"
    return found[0]


# --------------------------------------------------------------------------- one execution
def test_execution_counts_run_one_two_three():
    assert [c["execution_count"] for c in CODE] == list(range(1, len(CODE) + 1))
    assert not any(o.get("output_type") == "error" for c in CODE for o in outputs(c))


def test_the_stamp_matches_todays_cells_and_recorded_runs():
    """`make run` stamps the hash of the code cells and of the recorded runs they print (reid/record.py):
    a cell edited, or a recorded run changed, after the run fails here until the notebook runs again."""
    stamp = NB.get("metadata", {}).get(STAMP_KEY)
    assert stamp, "the notebook is not stamped: run it whole with `make run`"
    assert stamp["inputs"] == [p.relative_to(ROOT).as_posix() for p in notebook_inputs(ROOT / "results")]
    assert stamp["source_hash"] == source_hash(NB, ROOT), \
        "a code cell or a recorded run changed since the committed run: run the whole notebook again (make run)"


def test_the_stamp_changes_with_a_cell_or_an_input(tmp_path):
    edited = json.loads(json.dumps(NB))
    edited["cells"][1]["source"] = text(edited["cells"][1]) + "\n# edited"
    assert source_hash(edited, ROOT) != source_hash(NB, ROOT)
    (tmp_path / "results").mkdir()
    assert source_hash(NB, tmp_path) != source_hash(NB, ROOT)   # the recorded runs are part of it


# --------------------------------------------------------------------------- fits a screen
def _tables(html: str) -> list[tuple[int, list[str], list[str]]]:
    """(body rows, column labels, row labels) of each pandas HTML table in ``html``."""
    found = []
    for table in re.findall(r"<table.*?</table>", html, flags=re.S):
        head = re.search(r"<thead>(.*?)</thead>", table, flags=re.S).group(1)
        header_rows = re.findall(r"<tr.*?</tr>", head, flags=re.S)
        columns = [re.sub(r"<.*?>", "", h).strip() for h in re.findall(r"<th.*?</th>", header_rows[0], flags=re.S)][1:]
        body = re.findall(r"<tr>(.*?)</tr>", re.search(r"<tbody>(.*?)</tbody>", table, flags=re.S).group(1), flags=re.S)
        index = [re.sub(r"<.*?>", "", re.search(r"<th>(.*?)</th>", r, flags=re.S).group(1)).strip() for r in body]
        found.append((len(body), columns, index))
    return found


def test_tables_fit_a_screen():
    shown = 0
    for cell in CODE:
        for out in outputs(cell):
            html = text(out.get("data", {}), "text/html") if "text/html" in out.get("data", {}) else ""
            for rows, columns, index in _tables(html):
                shown += 1
                assert rows <= MAX_ROWS and len(columns) <= MAX_COLUMNS, (columns, index)
                assert all(len(label) <= MAX_LABEL for label in columns + index), (columns, index)
    assert shown >= 6   # layout counts, Q1, the two model tables, the ablations, the starts, …


def test_printed_lines_fit_a_screen():
    for cell in CODE:
        if "summary_table(" in text(cell):
            continue   # the torchsummary table the handout asks for
        for line in streams(cell).splitlines():
            assert len(line) <= LINE_WIDTH, line
        epoch_lines = [line for line in streams(cell).splitlines() if re.match(r"epoch \d+/\d+:", line)]
        assert len(epoch_lines) <= 20


# --------------------------------------------------------------------------- numbers come from code
MEASURED = (r"\b0\.\d{2,3}\b",                          # a fraction: Rank-k, mAP, a loss
            r"(?<![\d×])\d+(?:\.\d+)?×(?!\d)",         # a ratio: 1.67×, 4×
            r"[+−-]\d+\.\d{2,3}",                       # a difference: +0.025
            r"\b\d+(?:\.\d+)?\s?(?:min|minutes)\b",     # minutes
            r"\d+(?:\.\d+)?\s?%")                       # a percentage
ALLOWED = {"95 %", "0.005"}   # settings: the bootstrap intervals' level, the curve rule's least gain


def test_markdown_types_no_measured_number():
    for cell in MARKDOWN:
        for pattern in MEASURED:
            for m in re.finditer(pattern, text(cell)):
                assert m.group(0) in ALLOWED, f"typed measurement {m.group(0)!r} in: {text(cell)[:80]!r}"


def test_the_scan_catches_what_it_should():
    typed = "Re-ranking lifted Rank-1 by 0.09 to 0.803, +0.025 [+0.001, +0.049], 1.67× as fast, in 4.3 minutes, 28 %"
    hits = {m.group(0) for p in MEASURED for m in re.finditer(p, typed)}
    assert {"0.803", "1.67×", "+0.025", "4.3 minutes", "28 %"} <= hits
    assert not {m.group(0) for p in MEASURED for m in re.finditer(p, "8×8 kernel, 128×64 input, margin 1.0, 230 ids")}


# --------------------------------------------------------------------------- what the handout asks
def test_the_triplet_model_starts_from_the_id_models_initial_weights():
    cell = cell_with("holds_weights(triplet_model, initial_weights)")
    assert "# NBVAL_CHECK_OUTPUT" in text(cell)
    assert streams(cell).strip() == "the triplet model starts from the ID model's initial weights: True"


def test_q5_describes_the_handouts_file():
    out = " ".join(streams(cell_with("weight_mapping_report(")).split())
    assert out.startswith("Q5 — this run: 100 backbone tensors ")   # the answer first, then the file's mapping
    assert "Would load 100 of 136 tensors from resnet18-5c106cde.pth" in out
    assert "20 BN num_batches_tracked counters: 120 tensors would load" in out


def _settings_line(cell: dict) -> str:
    """The "Settings: …" statement a training cell prints (its wrapped continuation lines joined)."""
    lines = streams(cell).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Settings: "))
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return " ".join(" ".join(lines[start:end]).split())


def test_settings_lines_name_only_what_each_recipe_reads():
    id_line = _settings_line(cell_with("plan_training(TrainConfig.handout_id"))
    assert id_line.startswith("Settings: start: ") and "nn.CrossEntropyLoss" in id_line
    for word in ("P×K", "margin", "mining", "batch-hard", "rows"):
        assert word not in id_line, word
    tri_line = _settings_line(cell_with("plan_training(TrainConfig.handout_triplet"))
    assert "nn.TripletMarginLoss (margin 1.0) on the listed rows" in tri_line and "P×K" not in tri_line
    assert "P×K = " in _settings_line(cell_with("plan_training(TrainConfig.strong"))


def test_pred_csv_comes_from_a_handout_model():
    out = " ".join(streams(cell_with("write_predictions(")).split())
    assert re.search(r"pred\.csv: the (ID|triplet) loss \(handout\) model \(the handout model with the higher val "
                     r"mAP averaged over its kept epoch", out), out
    assert "pred_beyond.csv: the stronger recipe (beyond the handout)" in out


# --------------------------------------------------------------------------- one place per question
QUESTIONS = [f"Q{n}" for n in range(1, 12)]


def test_one_heading_per_question_in_order_with_the_answer_right_under_it():
    """Each ### Qn heading is a cell of its own, in the handout's order, and the next cell is the code cell
    that prints that question's answer for this run first ("Qn — this run: ...")."""
    cells = NB["cells"]
    headings = [(i, re.match(r"### (Q\d+) — ", text(c)).group(1)) for i, c in enumerate(cells)
                if c["cell_type"] == "markdown" and re.match(r"### Q\d+ — ", text(c))]
    assert [q for _, q in headings] == QUESTIONS
    for i, q in headings:
        assert text(cells[i]).strip().count("\n") == 0, f"{q}'s heading cell holds more than the heading"
        answer = cells[i + 1]
        assert answer["cell_type"] == "code", q
        assert streams(answer).startswith(f"{q} — this run: "), (q, streams(answer)[:80])


def test_code_lines_fit_a_screen():
    for cell in CODE:
        for line in text(cell).splitlines():
            assert len(line) <= LINE_WIDTH, line


def test_markdown_cells_stay_short():
    """The general explanations live in one section; no other markdown cell runs past a screen."""
    for cell in MARKDOWN:
        limit = 2_800 if text(cell).startswith("## How these answers are computed") else 1_700
        assert len(text(cell)) <= limit, text(cell)[:80]


def test_q9_heading_comes_before_its_figure():
    cells = NB["cells"]
    heading = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "### Q9 —" in text(c))
    figure = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and "plot_ranked_results(" in text(c))
    assert heading < figure
