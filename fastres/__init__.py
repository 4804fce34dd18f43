"""fastres: residual networks on the CPU, with Cython/OpenMP kernels under a small Python API."""

from __future__ import annotations

try:
    from fastres._kernels import _runtime
except ImportError as exc:  # pragma: no cover - depends on how the package was installed
    import os as _os

    _here = _os.path.dirname(_os.path.abspath(__file__))
    _hint = (
        f" This is the source tree ({_here}), where the kernels are not built: run Python from "
        "another directory to use the installed package, or build in place with "
        "`pip install -e .` (or `python setup.py build_ext --inplace`)."
        if _os.path.exists(_os.path.join(_here, "_kernels", "_runtime.pyx"))
        else " Reinstall fastres with `pip install .` from its source tree."
    )
    raise ImportError(
        f"fastres: the compiled kernels (fastres._kernels) are missing or failed to load ({exc})."
        + _hint
    ) from exc

from fastres._config import get_num_threads, set_num_threads
from fastres import functional, layers, models, reference  # noqa: E402
from fastres.io import load, save  # noqa: E402
from fastres import arena, metrics, optim, solver  # noqa: E402
from fastres.solver import evaluate, fit  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "__version__", "arena", "evaluate", "fit", "functional", "get_num_threads", "layers", "load",
    "metrics", "models", "optim", "reference", "save", "set_num_threads", "show_config", "solver",
]


def show_config() -> None:
    """Print the version, OpenMP status, thread count, BLAS in use and ISA path."""
    import numpy as np

    from fastres._config import blas_info

    print(f"fastres {__version__} (numpy {np.__version__})")
    print(f"  OpenMP:   {'on' if _runtime.openmp_enabled() else 'off (serial build)'}")
    print(f"  threads:  {get_num_threads()}")
    print(f"  ISA path: {_runtime.isa_path()}")
    for lib in blas_info():
        print(f"  BLAS:     {lib['library']} {lib['version']} ({lib['architecture']}), "
              f"{lib['threads']} thread(s) inside kernels, {lib['path']}")
