"""How the notebook's printed text is laid out: lines of at most LINE_WIDTH characters.

A grader reads the outputs on a screen; a long line wraps in the browser at an arbitrary place, or
scrolls. Every multi-clause message the project prints goes through :func:`wrap`, which reads
``LINE_WIDTH`` when it is called (a test may set it narrower and check that nothing breaks).
:func:`unwrap` undoes it, for code (and tests) that read a message back.
"""
from __future__ import annotations

import re
import textwrap

LINE_WIDTH = 100
INDENT = "  "


def wrap(text: str, width: int | None = None, indent: str = INDENT) -> str:
    """Each line of ``text`` filled to ``width`` characters (None: ``LINE_WIDTH`` as it is now),
    continuation lines indented by ``indent``; words longer than a line (paths) are not broken."""
    width = LINE_WIDTH if width is None else width
    return "\n".join(textwrap.fill(line, width, subsequent_indent=indent, break_long_words=False,
                                   break_on_hyphens=False) if len(line) > width else line
                     for line in text.split("\n"))


def unwrap(text: str, indent: str = INDENT) -> str:
    """``text`` with :func:`wrap`'s continuation breaks joined back into single spaces, so that what a
    message says can be read (or tested) whatever the width and the length of the paths in it."""
    return re.sub(r" *\n" + re.escape(indent) + r"(?=\S)", " ", text)


def plural(n: int, word: str) -> str:
    """"1 epoch", "2 epochs": ``n`` and ``word``, with an s unless ``n`` is 1."""
    return f"{n} {word}{'' if n == 1 else 's'}"
