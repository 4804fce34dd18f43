import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# Tolerances against the float64 reference: float64 kernels must agree to rounding; float32
# kernels accumulate in float32 (BLAS), so they get float32-sized tolerances.
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
