"""A Griffe extension for the API reference: read mibun's docstrings as they are written.

mibun's docstrings are plain text with bare doctests (``>>> x = ...``) and reST literal
blocks (``text::`` then an indented block), as PyTorch and Chainer write them, so that
``pytest --doctest-modules`` runs them; their Google-style sections (``Args:``,
``Returns:``) follow each other without blank lines. Before rendering:

* each doctest run becomes a ```` ```pycon ```` fence (Markdown would render ``>>>`` as
  nested block quotes and ``[1.0, 0.5]`` as a link), and ``text::`` becomes ``text:``;
* a blank line goes above each section title, which Griffe needs to see a section.

The source files stay as they are.
"""
from __future__ import annotations

import re

import griffe

_PROMPT = re.compile(r"^(\s*)>>> ?")
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Returns|Return|Yields|Raises|"
                      r"Examples|Example|Attributes|Notes|Note|Warnings|Warning):\s*$")


def fence_doctests(text: str) -> str:
    """Fence doctest runs (a ``>>>`` line to the next blank line); separate the sections.

    >>> fence_doctests("Square it.\\nReturns:\\n  x.\\n>>> 2 ** 2\\n4\\n\\nDone::").split("\\n")
    ['Square it.', '', 'Returns:', '  x.', '```pycon', '>>> 2 ** 2', '4', '```', '', 'Done:']
    """
    out, fence = [], None  # fence: the indentation of the open fence, or None
    for line in text.split("\n"):
        m = _PROMPT.match(line)
        if fence is None and m:
            fence = m.group(1)
            out.append(f"{fence}```pycon")
        elif fence is not None and not line.strip():
            out.append(f"{fence}```")
            fence = None
        if fence is None and line.rstrip().endswith("::") and line.strip() != "::":
            line = line.rstrip()[:-1]
        if fence is None and _SECTION.match(line) and out and out[-1].strip():
            out.append("")
        out.append(line)
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
