"""Build the Cython/OpenMP kernels in fastres/_kernels.

Metadata lives in pyproject.toml; this file only lists the extensions, picks the OpenMP flags for
the compiler (a warning and a serial build when it has none) and sets the Cython directives.

Environment switches (for development):
  FASTRES_BOUNDSCHECK=1   compile with Cython bounds and wraparound checks on (debugging)
  FASTRES_NO_OPENMP=1     build without OpenMP
  FASTRES_ONLY=_conv,...  build only the named kernel modules (faster rebuilds while editing one)
  FASTRES_NO_CLONES=1     x86-64 baseline only, no per-ISA function clones (to measure them)
  FASTRES_NATIVE=1        add -march=native (a wheel built so runs only on CPUs like this one)
"""

import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

HERE = os.path.dirname(os.path.abspath(__file__))
# One extension per fastres/_kernels/_<family>.pyx.
KERNELS = sorted(
    os.path.basename(p)[:-4] for p in glob.glob(os.path.join(HERE, "fastres", "_kernels", "_*.pyx"))
)

_OMP_TEST = r"""
#include <omp.h>
int main(void) { int n = 0;
#pragma omp parallel reduction(+:n)
  n += 1;
  return n > 0 ? 0 : 1; }
"""


def _compiler() -> str:
    return os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"


def openmp_flags() -> tuple[list[str], list[str]]:
    """Return (compile_args, link_args) enabling OpenMP, or ([], []) with a warning."""
    if os.environ.get("FASTRES_NO_OPENMP"):
        return [], []
    if sys.platform == "win32":
        return ["/openmp"], []
    cc = _compiler().split()
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":  # Apple clang needs libomp from Homebrew
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    tmp = tempfile.mkdtemp()
    try:
        src = os.path.join(tmp, "omp.c")
        with open(src, "w") as f:
            f.write(_OMP_TEST)
        for cflags, lflags in candidates:
            cmd = [*cc, *cflags, src, "-o", os.path.join(tmp, "omp"), *lflags]
            if subprocess.run(cmd, capture_output=True).returncode == 0:
                return cflags, lflags
    except OSError:
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warnings.warn(
        "fastres: the C compiler has no OpenMP support; building serial kernels "
        "(install libgomp/libomp for multi-threaded kernels).",
        stacklevel=1,
    )
    return [], []


def extensions() -> list[Extension]:
    omp_c, omp_l = openmp_flags()
    base_c = (["/O2"] if sys.platform == "win32"
              else ["-O3", "-fno-math-errno", "-Wno-unused-function", "-Wno-psabi"])
    macros = [("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")]
    if os.environ.get("FASTRES_NO_CLONES"):
        macros.append(("FASTRES_NO_CLONES", "1"))
    if os.environ.get("FASTRES_NATIVE") and sys.platform != "win32":
        base_c.append("-march=native")
    # The optimizer updates are bit-identical to fastres.optim's NumPy code only if a * b + c
    # stays two roundings (fr_optim.h); GCC and clang fuse it into an FMA by default.
    own_c = {} if sys.platform == "win32" else {"_optim": ["-ffp-contract=off"]}
    only = [s for s in os.environ.get("FASTRES_ONLY", "").split(",") if s]
    names = [k for k in KERNELS if not only or k in only]
    exts = [
        Extension(
            f"fastres._kernels.{name}",
            [f"fastres/_kernels/{name}.pyx"],
            include_dirs=[np.get_include(), "fastres/_kernels"],
            define_macros=macros,
            extra_compile_args=base_c + own_c.get(name, []) + omp_c,
            extra_link_args=omp_l,
        )
        for name in names
    ]
    checks = bool(os.environ.get("FASTRES_BOUNDSCHECK"))
    return cythonize(
        exts,
        compiler_directives={
            "language_level": 3,
            "boundscheck": checks,
            "wraparound": checks,
            "initializedcheck": checks,
            "cdivision": True,
            "nonecheck": False,
        },
    )


setup(ext_modules=extensions())
