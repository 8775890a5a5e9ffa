import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(__file__))  # tests/oracle.py

import oracle

#: "numpy", plus "cupy" where CuPy sees a GPU: the backends the op and layer tests run on.
BACKENDS = oracle.available_backends()


def pytest_collection_modifyitems(config, items):
    # The marker, not item.keywords: keywords also hold folder names (a checkout in .../gpu/).
    skip = pytest.mark.skip(reason="needs CuPy and a GPU")
    for item in items:
        if item.get_closest_marker("gpu") is not None and "cupy" not in BACKENDS:
            item.add_marker(skip)


@pytest.fixture(params=[pytest.param(name, marks=pytest.mark.gpu) if name == "cupy" else name
                        for name in ("numpy", "cupy")])
def xp(request):
    """The array module a backend test runs on; the CuPy case skips without a GPU."""
    if request.param == "cupy":
        if "cupy" not in BACKENDS:
            pytest.skip("needs CuPy and a GPU")
        import cupy
        return cupy
    return np


@pytest.fixture
def rng():
    return np.random.default_rng(0)
