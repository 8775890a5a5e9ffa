"""Op tests run on every backend: each test that calls ``check_op`` also runs on CuPy.

Where CuPy sees no GPU only NumPy is collected, so a CPU run is unchanged.
"""
import numpy as np
import oracle
import pytest

if "cupy" in oracle.available_backends():
    @pytest.fixture(autouse=True, params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
    def op_backend(request):
        """Point ``check_op`` at the backend of this run of the test."""
        if request.param == "numpy":
            yield np
            return
        if "check_op" not in request.function.__code__.co_names:
            pytest.skip("runs on NumPy only (does not go through check_op)")
        import cupy
        oracle.BACKEND = cupy
        try:
            yield cupy
        finally:
            oracle.BACKEND = np
