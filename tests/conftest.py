import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _no_download(monkeypatch):
    """No test touches the real network: load_dataset's automatic download is off
    (tests/data/test_download.py turns it back on against a local server)."""
    monkeypatch.setenv("FASTRES_NO_DOWNLOAD", "1")


@pytest.fixture
def one_thread():
    """Tiny shapes run fastest on one thread (and much faster than two on a busy machine)."""
    import fastres
    fastres.set_num_threads(1)
    yield
    fastres.set_num_threads(None)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# Tolerances against the float64 reference: float64 kernels must agree to rounding; float32
# kernels accumulate in float32 (BLAS), so they get float32-sized tolerances.
TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
