"""The tutorial as Jupyter notebooks, and mibun inside a notebook.

docs/make_notebooks.py makes one notebook per tutorial page; the committed notebooks must
be what the pages give, and each one runs from a clean kernel (nbclient and ipykernel, the
test extra). A progress bar of mibun.train is tqdm's notebook widget in a kernel.
"""
import json
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # docs/ is a package of tools beside src/

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from docs import doccheck, make_notebooks

NOTEBOOKS = os.path.join(ROOT, "docs", "notebooks")


def run(nb, tmp_path, timeout=120):
    """Execute ``nb`` in a fresh kernel in ``tmp_path``, as a learner would: mibun
    importable, and ``!mibun`` / ``!python`` the interpreter running the tests."""
    env = dict(os.environ, PYTHONPATH=doccheck._pythonpath(), DOCCHECK_PYTHON=sys.executable,
               PATH=doccheck._commands_dir() + os.pathsep + os.environ.get("PATH", ""),
               OPENBLAS_NUM_THREADS="1")
    env.pop("MPLBACKEND", None)  # the kernel's own inline backend
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=env)
    return nb


def test_the_page_list_is_the_sites_tutorial_in_order():
    with open(os.path.join(ROOT, "mkdocs.yml"), encoding="utf-8") as fh:
        nav = re.findall(r"tutorial/([\w-]+)\.md", fh.read())
    assert nav == make_notebooks.PAGES


def test_the_committed_notebooks_are_what_the_pages_give(capsys):
    assert make_notebooks.main(["--check", "--out", NOTEBOOKS]) == 0, capsys.readouterr().out


def test_check_finds_a_stale_notebook(tmp_path, capsys):
    assert make_notebooks.main(["--out", str(tmp_path)]) == 0
    assert make_notebooks.main(["--check", "--out", str(tmp_path)]) == 0
    (tmp_path / "05-automatic-backprop.ipynb").write_text("{}")
    assert make_notebooks.main(["--check", "--out", str(tmp_path)]) == 1
    assert "05-automatic-backprop.ipynb: out of date" in capsys.readouterr().out


def test_a_page_becomes_cells_with_every_output_in_its_own_cell():
    page = ("# T\n\nSee [the next page](functions.md#top) and [`Variable`][mibun.core.Variable]"
            " and [the reference](../reference/core.md).\n\n"
            "```pycon\n>>> a = 1\n>>> a + 1\n2\n>>> 1 / 0\nTraceback (most recent call last):\n"
            "  ...\nZeroDivisionError: division by zero\n>>> b = 3\n```\n\n"
            "<!-- doccheck: file s.py -->\n```python\nprint(2)\n```\n\n"
            "```console\n$ python s.py\n2\n$ mibun grad x --at x=1\n...\n```\nEnd.\n")
    nb = make_notebooks.notebook(page, "variables")
    cells = [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in nb.cells]
    assert cells[1:] == [
        ("markdown", ("# T\n\nSee [the next page](02-functions.ipynb) and `Variable` and "
                      "the reference."), []),
        ("code", "a = 1\na + 1", []),
        ("code", "1 / 0", ["raises-exception"]),
        ("code", "b = 3", []),
        ("code", "%%writefile s.py\nprint(2)", []),
        ("code", "!python s.py\n!mibun grad x --at x=1", []),
        ("markdown", "End.", []),
    ]
    assert "docs/tutorial/variables.md" in nb.cells[0].source


@pytest.mark.parametrize("name", sorted(make_notebooks.texts()))
def test_each_tutorial_notebook_runs_from_a_clean_kernel(name, tmp_path):
    with open(os.path.join(NOTEBOOKS, name), encoding="utf-8") as fh:
        nb = nbformat.read(fh, as_version=4)
    run(nb, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code"
              and "raises-exception" not in c.metadata.get("tags", [])
              for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    shown = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert shown, "the notebook showed nothing"
    for c in nb.cells:  # a graph(...) at the end of a cell is drawn inline
        if c.cell_type == "code" and c.source.split("\n")[-1].startswith("graph("):
            assert any("image/svg+xml" in o.get("data", {}) for o in c.outputs), c.outputs


def test_train_shows_a_progress_widget_in_a_notebook(tmp_path):
    pytest.importorskip("ipywidgets")  # without it tqdm.auto falls back to text, as before
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "from mibun import train\n"
        "result = train.train(train.make_config(epochs=1), 'run', progress=True)"),
        nbformat.v4.new_code_cell("import sys, mibun\nprint(sys.executable, mibun.__file__)")])
    run(nb, tmp_path)
    # the kernel is this interpreter, with this checkout's mibun
    import mibun
    assert nb.cells[1].outputs[0].text.split() == [sys.executable, mibun.__file__]
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    widgets = [o for o in outputs if "application/vnd.jupyter.widget-view+json"
               in o.get("data", {})]
    assert widgets, json.dumps(outputs, indent=1)[:2000]


def test_train_shows_a_text_progress_bar_outside_a_notebook(tmp_path, capsys):
    from mibun import train
    train.train(train.make_config(epochs=1), str(tmp_path / "run"), progress=True)
    assert "epoch 1/1" in capsys.readouterr().err  # tqdm's text bar, on stderr
