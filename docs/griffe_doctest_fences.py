"""A Griffe extension for the API reference: show docstring doctests as code.

mibun's docstrings are plain text with bare doctests (``>>> x = ...``) and reST literal
blocks (``text::`` then an indented block), as PyTorch and Chainer write them, so that
``pytest --doctest-modules`` runs them. Markdown would render ``>>>`` as nested block
quotes and ``[1.0, 0.5]`` as a link, so before rendering each doctest run becomes a
```` ```pycon ```` fence and ``text::`` becomes ``text:``. The source files stay as they are.
"""
from __future__ import annotations

import re

import griffe

_PROMPT = re.compile(r"^(\s*)>>> ?")


def fence_doctests(text: str) -> str:
    """Wrap every doctest run (from a ``>>>`` line to the next blank line) in a pycon fence.

    >>> print(fence_doctests("Square it.\\n\\n>>> 2 ** 2\\n4\\n\\nDone::"))
    Square it.
    <BLANKLINE>
    ```pycon
    >>> 2 ** 2
    4
    ```
    <BLANKLINE>
    Done:
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
        out.append(line)
    if fence is not None:
        out.append(f"{fence}```")
    return "\n".join(out)


class DoctestFences(griffe.Extension):
    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = fence_doctests(obj.docstring.value)
