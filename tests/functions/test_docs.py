"""Every public F function documents itself (mibun issue 11): a one-line summary, ``Args:``
when it takes arguments, ``Returns:``, and a ``>>>`` example that the doctests run."""
import inspect

import pytest

import mibun.functions as F

PUBLIC = sorted(n for n in dir(F) if not n.startswith("_") and inspect.isfunction(getattr(F, n)))


def _missing(fn):
    doc = inspect.getdoc(fn) or ""
    lines = doc.splitlines()
    first = lines[0] if lines else ""
    missing = []
    if not (first.endswith(".") and len(first) < 100 and (len(lines) == 1 or not lines[1])):
        missing.append("a one-line summary (first line ending with '.', under 100 chars)")
    if inspect.signature(fn).parameters and "\nArgs:\n" not in f"\n{doc}\n":
        missing.append("an Args: section")
    if "\nReturns:\n" not in f"\n{doc}\n":
        missing.append("a Returns: section")
    if ">>> " not in doc:
        missing.append("a >>> example")
    return missing


def test_every_public_function_is_listed():
    assert len(PUBLIC) >= 80 and "conv2d" in PUBLIC and "softmax_simple" in PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_public_function_docstring(name):
    missing = _missing(getattr(F, name))
    assert not missing, f"F.{name}'s docstring lacks " + "; ".join(missing)


def test_the_check_names_what_a_docstring_lacks():
    def wrapped(x):
        """A summary that wraps
        onto a second line."""

    def documented(x):
        """One line.

        Args:
            x: anything.
        Returns:
            None.

        >>> documented(1)
        """

    assert _missing(wrapped) == [
        "a one-line summary (first line ending with '.', under 100 chars)",
        "an Args: section", "a Returns: section", "a >>> example"]
    assert _missing(documented) == []
