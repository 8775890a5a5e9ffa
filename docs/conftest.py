"""Collect every Markdown page under docs/ as a test that runs its code blocks (doccheck)."""
import pathlib

import pytest

from docs import doccheck

# Build tools, not pages: the figure script trains a model, the Griffe extension needs the
# docs extra (griffe), the notebook script nbformat. tests/test_docs_check.py tests the first
# two, tests/test_notebooks.py the third.
collect_ignore = ["make_figures.py", "griffe_doctest_fences.py", "make_notebooks.py"]


def pytest_collect_file(file_path: pathlib.Path, parent):
    if file_path.suffix == ".md":
        return MarkdownPage.from_parent(parent, path=file_path)
    return None


class MarkdownPage(pytest.File):
    def collect(self):
        # A page without code (the reference pages are mkdocstrings directives) has nothing
        # to run; reading its blocks still fails here on a fence that is never closed.
        if doccheck.blocks(self.path.read_text(encoding="utf-8")):
            yield PageItem.from_parent(self, name="code blocks")


class PageItem(pytest.Item):
    def runtest(self):
        skipped = []
        ran = doccheck.check_page(self.path.read_text(encoding="utf-8"), str(self.path),
                                  skipped)
        if skipped:  # the page's other blocks ran and passed; say what did not run
            self.add_report_section("call", "skipped blocks", "\n".join(skipped))
            if not ran:
                pytest.skip("; ".join(skipped))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, doccheck.DocCheckError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"{self.path.name}: code blocks"
