"""docs/RELIABILITY.md names tests: every one it names exists in the file its prefix stands for."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PREFIX = {"b": "test_bad_inputs", "d": "test_data", "p": "test_predict", "t": "test_train", "m": "test_make_data",
          "u": "test_budget", "dr": "test_drive", "c": "test_colab", "cn": "test_colab_notebook", "pr": "test_precision"}


def test_every_test_reliability_md_names_exists():
    doc = (ROOT / "docs" / "RELIABILITY.md").read_text()
    named = re.findall(r"`(\w+)::(test_\w+)`", doc)
    assert len(named) > 50
    sources = {p: (ROOT / "tests" / f"{f}.py").read_text() for p, f in PREFIX.items()}
    missing = [f"{p}::{name}" for p, name in named if f"def {name}(" not in sources[p]]
    assert not missing, missing
