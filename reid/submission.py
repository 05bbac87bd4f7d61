"""The hand-in: a zip of the notebook *as saved*, pred.csv and the figures — only when the saved notebook
is this run.

The notebook a student uploads arrives with every cell executed (our full run), so counting executed
cells proves nothing. Instead each run has a token: the first cell prints it (:func:`start_run`), the
prediction cell prints it again beside what it wrote (:func:`record_predictions`), and the
submission cell (:func:`submit_this_run`) reads the notebook as saved (on Colab: the Drive copy) and
packs only when both of those cells' saved outputs hold *this kernel's* token. Otherwise it packs
nothing and says: save (Ctrl+S or File → Save), then run this cell again.

Under nbconvert or nbval the file on disk is always an earlier run's (they save after the last cell),
so there the cell says so and packs nothing; ``make run`` packs afterwards, from the saved file, with
the same check (``python -m reid.submission submit assignment.ipynb``: the token the saved first cell
printed must be the one the saved prediction cell printed and the one the run recorded).

This module imports only the standard library at its top (the first cell imports it early).
"""
from __future__ import annotations

import json
import os
import re
import secrets
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["start_run", "run_token", "record_predictions", "saved_tokens", "check_saved", "submit_this_run",
           "RUN_RECORD", "main"]

RUN_RECORD = "run.json"
"""Written by the prediction cell into the runs folder: the token, the prediction files, the figures folder."""
TOKEN_LINE = "Run token: {token}"
PRED_LINE = "Predictions of run {token}"
_TOKEN = r"([0-9]{8}T[0-9]{6}Z-[0-9a-f]{6})"
_STATE: dict[str, Any] = {}


def start_run() -> str:
    """A fresh token for this run (time and 6 random hex digits), kept for this kernel; returns the line
    the first cell prints. Re-running the first cell starts a new run."""
    _STATE.clear()
    _STATE["token"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)
    return TOKEN_LINE.format(token=_STATE["token"]) + " (the submission cell checks that the saved notebook holds it)"


def run_token() -> str | None:
    return _STATE.get("token")


def record_predictions(workspace: Any, pred: str | Path, beyond: str | Path | None = None) -> str:
    """After the prediction cell wrote pred.csv (and the stronger recipe's pred_beyond.csv): remember
    them for the submission and write ``RUN_RECORD`` into the runs folder; returns the line the cell
    prints, which holds the token."""
    token = _STATE.get("token") or "unknown"
    _STATE.update(workspace=workspace, pred=Path(pred), beyond=Path(beyond) if beyond else None)
    record = {"token": token, "pred": str(Path(pred).absolute()),
              "pred_beyond": str(Path(beyond).absolute()) if beyond else None,
              "figures": str(Path(workspace.figures).absolute()), "notebook": str(workspace.project / "assignment.ipynb")}
    kept = Path(getattr(workspace, "kept", workspace.runs))   # in Drive on Colab
    kept.mkdir(parents=True, exist_ok=True)
    (kept / RUN_RECORD).write_text(json.dumps(record, indent=1))
    return PRED_LINE.format(token=token) + f": {Path(pred).name}" + (f" and {Path(beyond).name}" if beyond else "")


def _text(cell: dict) -> str:
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text", out.get("data", {}).get("text/plain", ""))
        parts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(parts)


def saved_tokens(notebook: str | Path) -> tuple[str | None, str | None]:
    """(the token the saved first code cell printed, the token a saved cell printed beside its predictions),
    None where there is none."""
    cells = [c for c in json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
             if c.get("cell_type") == "code"]
    first = re.search(TOKEN_LINE.format(token=_TOKEN), _text(cells[0])) if cells else None
    pred = None
    for cell in cells:
        found = re.search(PRED_LINE.format(token=_TOKEN), _text(cell))
        if found:
            pred = found
    return (first.group(1) if first else None), (pred.group(1) if pred else None)


PACKED_AFTER = "REID_PACKED_AFTER"
"""Set to 1 by ``make run``: the submission cell then says that ``make run`` packs after saving (it still
packs nothing itself: the file on disk is an earlier run's)."""
DRIVE_WAIT = "REID_DRIVE_WAIT_S"
"""Seconds the submission cell on Colab waits in all (three tries) for Drive to show a notebook saved just
now; 6 by default (the simulated-Colab test sets a fraction of a second: its Drive is a local folder)."""


def check_saved(notebook: str | Path, token: str) -> tuple[bool, str]:
    """(whether the saved notebook is run ``token``'s: its first cell and its prediction cell printed it,
    a line saying what is wrong and what to do)."""
    notebook = Path(notebook)
    if not notebook.is_file():
        return False, (f"✗ {notebook} not found: open the notebook from the project folder (on Colab: File → Open "
                       f"notebook → Google Drive), save it (Ctrl+S) and run this cell again")
    first, pred = saved_tokens(notebook)
    if first == token and pred == token:
        return True, f"✓ the saved {notebook.name} is this run ({token})"
    if first != token:
        what = "an earlier run's outputs" if first else "no run token in its first cell"
    else:
        what = "this run's first cell but not its predictions (saved before the prediction cell ran)"
    return False, (f"✗ nothing packed: the saved {notebook.name} holds {what}. Save the notebook (Ctrl+S or File → "
                   f"Save), then run this cell again (if you saved just now, Drive may need a few seconds). (Under "
                   f"nbconvert or nbval the file on disk is always an earlier run's: `make run` packs after saving, "
                   f"with `python -m reid.submission submit`.)")


def submit_this_run() -> Path | None:
    """The submission cell: pack this run's notebook as saved, its predictions and figures, when the saved
    notebook holds this kernel's token (see the module docstring); else say what to do and pack nothing.
    Uses no notebook variable, so run alone in a fresh kernel it only says how to get there."""
    token, workspace = _STATE.get("token"), _STATE.get("workspace")
    if token is None or workspace is None:
        print("✗ nothing to pack in this kernel: Runtime → Run all, save, then run this cell")
        return None
    notebook = Path(workspace.project) / "assignment.ipynb"
    ok, line = check_saved(notebook, token)
    wait = float(os.environ.get(DRIVE_WAIT, "6"))       # Drive may show the old copy for a few seconds
    for _ in range(3 if getattr(workspace, "colab", False) else 0):
        if ok:
            break
        time.sleep(wait / 3)
        ok, line = check_saved(notebook, token)
    if not ok and os.environ.get(PACKED_AFTER) == "1":
        line = ("! not packed by this cell: `make run` executes the notebook with nbconvert, which saves it only after "
                "the last cell; `make run` then packs the saved notebook through the same check "
                "(`python -m reid.submission submit`)")
    print(_wrap(line))
    if not ok:
        return None
    return workspace.pack(notebook, _STATE["pred"], _STATE.get("beyond"))


def _wrap(text: str) -> str:
    from .text import wrap  # noqa: PLC0415 (stdlib-only top: see the module docstring)
    return wrap(text)


def submit_saved(notebook: str | Path, runs: str | Path) -> Path:
    """``make run``'s packing: the saved ``notebook`` must be one run — its first cell's token equal to its
    prediction cell's and to the one ``runs/RUN_RECORD`` recorded; then pack what that run wrote.

    Raises:
        ValueError naming what does not match.
    """
    from .colab import Workspace  # noqa: PLC0415

    notebook, runs = Path(notebook), Path(runs)
    record_path = runs / RUN_RECORD
    if not record_path.is_file():
        raise ValueError(f"{record_path}: no run recorded (run the notebook first)")
    record = json.loads(record_path.read_text())
    ok, line = check_saved(notebook, record["token"])
    if not ok:
        raise ValueError(f"{notebook} is not the run recorded in {record_path} ({record['token']}): {line}")
    ws = Workspace(notebook.parent.absolute())
    ws.figures_override = Path(record["figures"])
    return ws.pack(notebook, Path(record["pred"]), Path(record["pred_beyond"]) if record.get("pred_beyond") else None,
                   zip_path=runs / "submission.zip")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3) or args[0] != "submit":
        print("usage: python -m reid.submission submit NOTEBOOK [RUNS_FOLDER (default runs/full)]", file=sys.stderr)
        return 2
    try:
        path = submit_saved(args[1], args[2] if len(args) == 3 else "runs/full")
    except ValueError as err:
        print(f"reid.submission: {err}", file=sys.stderr)
        return 1
    print(f"packed {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
