"""Make the tutorial's Jupyter notebooks: ``python docs/make_notebooks.py [--out DIR] [--check]``.

One notebook per page of ``docs/tutorial/``, in the order of the site, written to
``docs/notebooks/`` (or ``--out``). The notebooks are committed, so a learner can download
them from the site or the repository; ``--check`` (and tests/test_notebooks.py) fails when
they differ from what the pages give, and the tests run every notebook in a fresh kernel.

A page becomes cells as doccheck reads it (docs/doccheck.py):

* text between code blocks: a Markdown cell. Links to other tutorial pages point at their
  notebooks; links into the rest of the site (the reference, the how-to guides) keep their
  text only, since a notebook has no site around it. Figures are found in ``docs/figures/``.
* ``pycon``: the ``>>>`` statements without their prompts, one cell up to each statement
  that shows output, so every output of the page appears in its own cell. A statement that
  shows a traceback gets the ``raises-exception`` tag (Jupyter runs on past it).
* ``python``: one cell; with ``<!-- doccheck: file NAME -->``, a ``%%writefile NAME`` cell.
* ``console``: one cell of ``!command`` lines.

The notebooks hold no outputs: running them gives them.
"""
from __future__ import annotations

import argparse
import doctest
import os
import re
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # docs/ is a package beside src/

from docs import doccheck

TUTORIAL = os.path.join(HERE, "tutorial")
OUT = os.path.join(HERE, "notebooks")
#: The tutorial's pages in the order of the site's navigation (mkdocs.yml; a test checks it).
PAGES = ["index", "variables", "functions", "numerical-differentiation", "backprop-by-hand",
         "automatic-backprop", "vectors-and-matrices", "several-inputs-and-outputs",
         "generations", "memory", "higher-order", "tensors-and-broadcasting",
         "neural-network"]

_AUTOREF = re.compile(r"\[([^\]]+)\]\[[\w.]+\]")  # [`Variable`][mibun.core.Variable]
_MD_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\(([^)\s]+?\.md)(#[^)]*)?\)")  # [text](page.md#a)


def notebook_name(page: str) -> str:
    """``"variables"`` -> ``"01-variables.ipynb"``: numbered as on the site."""
    return f"{PAGES.index(page):02d}-{page}.ipynb"


def _markdown(text: str) -> str:
    text = _AUTOREF.sub(r"\1", text)

    def link(m):
        target = m.group(2)
        page = target[:-3]
        if "/" not in target and page in PAGES:
            return f"[{m.group(1)}]({notebook_name(page)})"
        return m.group(1)  # the reference or a how-to: the site's, not a notebook's
    return _MD_LINK.sub(link, text).strip("\n")


def _pycon_cells(block):
    cells, source = [], []
    for ex in doctest.DocTestParser().get_examples(block.code):
        source.append(ex.source.rstrip("\n"))
        if ex.want or ex.exc_msg:
            cells.append(("\n".join(source), ex.exc_msg is not None))
            source = []
    if source:
        cells.append(("\n".join(source), False))
    return cells


def notebook(text: str, page: str) -> nbformat.NotebookNode:
    """The notebook of one tutorial page (its Markdown ``text``)."""
    lines = text.split("\n")
    cells, start = [], 0

    def add(kind, source, tags=()):
        if not source.strip():
            return
        cell = (nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                else nbformat.v4.new_code_cell(source))
        cell.id = f"{page}-{len(cells)}"  # stable ids: the same page gives the same file
        if tags:
            cell.metadata["tags"] = list(tags)
        cells.append(cell)

    source_md = os.path.join("docs", "tutorial", page + ".md")
    add("markdown", f"*This notebook is made from `{source_md}` by `docs/make_notebooks.py`. "
                    "Run the cells in order; the site has the same page with links into "
                    "the reference.*")
    for b in doccheck.blocks(text):
        if b.needs:
            raise ValueError(f"{page}.md:{b.lineno}: a block that needs {b.needs} cannot "
                             "run in every notebook; keep the tutorial free of needs")
        fence = b.lineno - 1  # 0-based line of the opening fence
        above = fence
        while above > start and lines[above - 1].lstrip().startswith("<!-- doccheck:"):
            above -= 1
        add("markdown", _markdown("\n".join(lines[start:above])))
        if b.lang == "pycon":
            for source, raises in _pycon_cells(b):
                add("code", source, ("raises-exception",) if raises else ())
        elif b.lang == "python":
            add("code", (f"%%writefile {b.file}\n" if b.file else "") + b.code.rstrip("\n"))
        else:
            add("code", "\n".join("!" + cmd for cmd, _ in doccheck.commands(b.code)))
        start = b.end  # the line after the closing fence (b.end is 1-based)
    add("markdown", _markdown("\n".join(lines[start:])))
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata = {"kernelspec": {"display_name": "Python 3", "language": "python",
                                  "name": "python3"},
                   "language_info": {"name": "python"}}
    return nb


def texts() -> dict:
    """``{file name: notebook text}`` for every tutorial page."""
    out = {}
    for page in PAGES:
        with open(os.path.join(TUTORIAL, page + ".md"), encoding="utf-8") as fh:
            nb = notebook(fh.read(), page)
        nbformat.validate(nb)
        out[notebook_name(page)] = nbformat.writes(nb) + "\n"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=OUT, help="directory to write into (docs/notebooks)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; fail if --out differs from the pages")
    args = ap.parse_args(argv)
    made = texts()
    if args.check:
        have = set(os.listdir(args.out)) if os.path.isdir(args.out) else set()
        stale = sorted(n for n in made if n not in have or _read(args.out, n) != made[n])
        extra = sorted(n for n in have if n.endswith(".ipynb") and n not in made)
        for n in stale + extra:
            print(f"{os.path.join(args.out, n)}: out of date; run python docs/make_notebooks.py")
        return 1 if stale or extra else 0
    os.makedirs(args.out, exist_ok=True)
    for name, text in made.items():
        with open(os.path.join(args.out, name), "w", encoding="utf-8") as fh:
            fh.write(text)
        print(os.path.join(args.out, name))
    return 0


def _read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as fh:
        return fh.read()


if __name__ == "__main__":
    sys.exit(main())
