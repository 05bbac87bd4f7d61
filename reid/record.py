"""The committed notebook is one top-to-bottom run: a stamp that says which sources it ran.

``make run`` executes the whole notebook, then stamps it (``python -m reid.record stamp
assignment.ipynb``): the notebook's metadata gets the SHA-256 of its code cells' sources and of the
committed files its cells read (the recorded runs in ``results/`` that the ablation and start tables
print — not files the run writes). ``tests/test_notebook.py`` recomputes it: a code cell edited, or a
recorded run changed, after the run fails the test until the whole notebook runs again. Editing one
cell's output by hand, or re-executing one cell, leaves the stamp stale or the execution counts out of
order, which the same test checks.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from .runs import ABLATIONS, START_RUNS, _files

__all__ = ["notebook_inputs", "source_hash", "stamp", "STAMP_KEY"]

STAMP_KEY = "reid_run"


def notebook_inputs(results: str | Path = "results") -> list[Path]:
    """The committed files the notebook's cells read: every recorded run of the ablation table
    (reid.runs.ABLATIONS) and of the start table (reid.runs.START_RUNS), sorted."""
    names = {name for entry in ABLATIONS for run in entry[2:4] for name in _files(run)}
    names |= {name for _, *runs in START_RUNS for name in runs}
    return sorted(Path(results) / name for name in names)


def source_hash(notebook: dict, root: str | Path = ".") -> str:
    """SHA-256 of the code cells' sources (in order) and of :func:`notebook_inputs` (name and bytes; a
    missing file counts as missing)."""
    h = hashlib.sha256()
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            source = cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])
            h.update(b"\x00cell\x00" + source.encode())
    for path in notebook_inputs(Path(root) / "results"):
        h.update(b"\x00file\x00" + path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes() if path.is_file() else b"\x00missing\x00")
    return h.hexdigest()


def stamp(path: str | Path) -> str:
    """Write the stamp into ``path``'s metadata (the notebook as nbconvert saved it); returns the hash."""
    import nbformat  # noqa: PLC0415 (jupyter's; written back exactly as nbconvert writes)

    path = Path(path)
    nb = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    digest = source_hash(nb, path.parent)
    nb.metadata[STAMP_KEY] = {"source_hash": digest, "inputs": [
        p.relative_to(path.parent).as_posix() for p in notebook_inputs(path.parent / "results")]}
    nbformat.write(nb, path)
    return digest


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "stamp":
        print("usage: python -m reid.record stamp NOTEBOOK", file=sys.stderr)
        return 2
    print(f"stamped {args[1]}: {stamp(args[1])[:12]}…")
    return 0


if __name__ == "__main__":
    sys.exit(main())
