"""How the notebook's printed text is laid out: lines of at most LINE_WIDTH characters.

A grader reads the outputs on a screen; a long line wraps in the browser at an arbitrary place, or
scrolls. Every multi-clause message the project prints goes through :func:`wrap`.
"""
from __future__ import annotations

import textwrap

LINE_WIDTH = 110


def wrap(text: str, width: int = LINE_WIDTH, indent: str = "  ") -> str:
    """Each line of ``text`` filled to ``width`` characters, continuation lines indented by ``indent``;
    words longer than a line (paths) are not broken."""
    return "\n".join(textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False) if len(line) > width else line
                     for line in text.split("\n"))
