"""The docs checks themselves: the code-block checker can fail, and the figures are drawn.

docs/conftest.py runs every page under docs/ through docs/doccheck.py; these tests make sure
that checker catches a wrong output, an unchecked block and a failing command, so a green
docs run means something.
"""
import os
import re
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")
sys.path.insert(0, ROOT)  # docs/ is a package of tools beside src/

from docs import doccheck, make_figures


def fence(lang, body):
    return f"```{lang}\n{body}```\n"


def test_a_right_page_passes_and_blocks_share_one_namespace():
    page = ("# t\n\n" + fence("python", "def square(x):\n    return x * x\n")
            + "text\n\n" + fence("pycon", ">>> square(3)\n9\n>>> y = 4\n")
            + fence("pycon", ">>> square(y)\n16\n>>> list(range(20))\n[0, 1, ..., 19]\n"))
    assert doccheck.check_page(page) == 3


@pytest.mark.parametrize("page, message", [
    (fence("pycon", ">>> 1 + 1\n3\n"), "Expected:\n    3\nGot:\n    2"),
    (fence("pycon", ">>> 1 / 0\n"), "ZeroDivisionError"),
    (fence("python", "raise ValueError('boom')\n"), "raised ValueError: boom"),
    (fence("bash", "ls\n"), "a code block with 'bash': nothing can check it"),
    (fence("", "x = 1\n"), "a code block with no language"),
    (fence("console", "$ echo hello\nbye\n"), "`echo hello` (exit status 0) printed\nhello"),
    (fence("console", "no prompt\n"), "must start with '$ '"),
    ("```pycon\n>>> 1\n1\n", "never closed"),
])
def test_a_wrong_page_fails(page, message):
    with pytest.raises(doccheck.DocCheckError) as e:
        doccheck.check_page(page)
    assert message in str(e.value)


def test_console_runs_this_python_and_mibun_in_a_fresh_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    page = fence("console", "$ python -c 'print(6 * 7)'\n42\n$ touch made-here\n$ ls\nmade-here\n"
                 "$ mibun grad 'x**3' --at x=2 | head -1\nf(x) = x ** 3\n")
    assert doccheck.check_page(page) == 1
    assert os.listdir(tmp_path) == []  # the page ran in its own temporary directory


def test_pages_files_and_the_figure_list_agree():
    pages = [os.path.join(d, f) for d, _, fs in os.walk(DOCS) for f in fs if f.endswith(".md")]
    used = set()
    for p in pages:
        with open(p, encoding="utf-8") as f:
            used |= set(re.findall(r"\]\((?:\.\./)?figures/([\w.-]+)\)", f.read()))
    assert used, "no page shows a figure: the pattern above is out of date"
    committed = set(os.listdir(os.path.join(DOCS, "figures")))
    assert used <= committed
    assert committed == set(make_figures.FIGURES)


def test_make_figures_draws_every_figure(tmp_path):
    names = [n for n in make_figures.FIGURES
             if shutil.which("dot") or n not in make_figures.NEEDS_GRAPHVIZ]
    assert make_figures.main(["--out", str(tmp_path), *names]) == 0
    for n in names:
        text = (tmp_path / n).read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text


def test_the_griffe_extension_fences_doctests_and_separates_sections():
    pytest.importorskip("griffe")  # the docs extra
    from docs import griffe_doctest_fences as g
    text = "Sum.\nArgs:\n    x: input.\nReturns:\n    y.\n\n>>> f([1, 2])\n[1.0, 0.5]\n\nEnd::"
    assert g.fence_doctests(text).split("\n") == [
        "Sum.", "", "Args:", "    x: input.", "", "Returns:", "    y.", "",
        "```pycon", ">>> f([1, 2])", "[1.0, 0.5]", "```", "", "End:"]


GPU_BLOCK = "<!-- doccheck: needs gpu -->\n" + fence("pycon", ">>> 1 + 1\n3\n")


def test_a_block_that_needs_what_is_missing_is_skipped_and_said(monkeypatch):
    monkeypatch.setattr(doccheck, "unmet", lambda need: f"no {need} here")
    page = fence("pycon", ">>> 2 * 3\n6\n") + "\n" + GPU_BLOCK
    skipped = []
    assert doccheck.check_page(page, "p.md", skipped) == 1
    assert skipped == ["p.md:7: no gpu here"]
    assert doccheck.blocks(page)[1].needs == ("gpu",)


def test_a_block_whose_needs_are_met_runs_and_is_checked(monkeypatch):
    monkeypatch.setattr(doccheck, "unmet", lambda need: None)
    with pytest.raises(doccheck.DocCheckError, match="Expected:\n    3\nGot:\n    2"):
        doccheck.check_page(GPU_BLOCK)


def test_needs_are_checked_for_real():
    from mibun import backend
    has_gpu = doccheck.unmet("gpu") is None
    assert has_gpu == (backend.cupy is not None
                       and backend.cupy.cuda.runtime.getDeviceCount() > 0)
    with pytest.raises(doccheck.DocCheckError, match="unknown need 'tpu'"):
        doccheck.check_page("<!-- doccheck: needs tpu -->\n" + fence("python", "pass\n"))


def test_missing_mpi_is_an_error_when_ci_requires_it(monkeypatch):
    monkeypatch.setattr(doccheck, "_mpiexec", lambda: None)
    monkeypatch.delenv("MIBUN_REQUIRE_MPI", raising=False)
    assert "mpiexec" in doccheck.unmet("mpi")
    monkeypatch.setenv("MIBUN_REQUIRE_MPI", "1")
    with pytest.raises(doccheck.DocCheckError, match="MIBUN_REQUIRE_MPI"):
        doccheck.unmet("mpi")


def test_a_file_block_is_written_for_the_commands_after_it_not_run():
    page = ("<!-- doccheck: file hello.py -->\n" + fence("python", "print('hi from a file')\n")
            + fence("console", "$ python hello.py\nhi from a file\n"))
    assert doccheck.check_page(page) == 2
    wrong = page.replace("$ python hello.py\nhi", "$ python hello.py\nbye")
    with pytest.raises(doccheck.DocCheckError, match="printed\nhi from a file"):
        doccheck.check_page(wrong)


def test_directives_stack_and_an_unknown_one_is_an_error():
    page = "<!-- doccheck: needs mpi -->\n<!-- doccheck: file a.py -->\n" + fence("python", "")
    (b,) = doccheck.blocks(page)
    assert (b.needs, b.file) == (("mpi",), "a.py")
    with pytest.raises(doccheck.DocCheckError, match="unknown directive 'run'"):
        doccheck.blocks("<!-- doccheck: run fast -->\n" + fence("python", "pass\n"))


def test_a_page_that_turns_the_collector_off_cannot_leave_it_off():
    import gc
    page = fence("pycon", ">>> import gc\n>>> gc.disable()\n>>> 1\n2\n")
    with pytest.raises(doccheck.DocCheckError):
        doccheck.check_page(page)
    assert gc.isenabled()


def test_python_and_mibun_are_programs_that_other_programs_can_start():
    # mpiexec starts programs, not shell functions: `env` stands in for it here
    page = fence("console", "$ env python -c 'import sys; print(sys.executable)'\n"
                 f"{sys.executable}\n$ env mibun grad 'x**2' --at x=3 | head -1\n"
                 "f(x) = x ** 2\n")
    assert doccheck.check_page(page) == 1


# =============================================================================
# The README and the layout tree: checked like the pages
# =============================================================================
README = os.path.join(ROOT, "README.md")
FIRST_COMMANDS = ["pip install -e . && mibun train", "pip install -e '.[test]' && pytest"]


def _readme():
    with open(README, encoding="utf-8") as f:
        return f.read()


def test_the_readme_opens_with_the_two_commands_and_they_are_true():
    # Not run here (one installs, the other is this suite): check what they rely on.
    tomllib = pytest.importorskip("tomllib")
    first = doccheck.blocks(_readme())[0]
    assert first.lang == "bash" and first.lineno < 5
    assert [line.split("#")[0].strip() for line in first.code.splitlines()] == FIRST_COMMANDS
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    assert project["scripts"]["mibun"] == "mibun.cli:main"
    assert any(dep.startswith("pytest") for dep in project["optional-dependencies"]["test"])


def test_the_readme_code_blocks_run_and_print_what_they_show():
    # Every block after the two commands runs as on a page under docs/, `mibun train` too.
    text = _readme()
    first = doccheck.blocks(text)[0]
    lines = text.split("\n")
    rest = "\n" * first.end + "\n".join(lines[first.end:])  # keeps the line numbers
    assert doccheck.check_page(rest, README) >= 4


def test_the_layout_tree_names_only_files_that_exist():
    # docs/guide/layout.md draws src/mibun/ as an indented block: every module and folder
    # it names (a module with or without .py) must be there.
    with open(os.path.join(DOCS, "guide", "layout.md"), encoding="utf-8") as f:
        tree = [line[4:] for line in f.read().split("\n") if line.startswith("    ")]
    assert tree[0] == "src/mibun/"
    parents, named = {0: os.path.join(ROOT, "src", "mibun")}, 0
    for line in tree[1:]:
        depth = (len(line) - len(line.lstrip())) // 2
        for name in line.split("#")[0].split():
            where = parents[depth - 1]
            if name.endswith("/"):
                parents[depth] = os.path.join(where, name)
                assert os.path.isdir(parents[depth]), name
            else:
                assert any(os.path.isfile(os.path.join(where, name + ext))
                           for ext in ("", ".py")), f"{name} is not in {where}"
            named += 1
    assert named > 30
