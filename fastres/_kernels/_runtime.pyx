"""What the compiled kernels were built with and which ISA path this CPU takes."""
from fastres._kernels._common cimport fr_openmp_enabled, fr_omp_max_threads, fr_isa_level, FR_HAVE_CLONES


def openmp_enabled() -> bool:
    return bool(fr_openmp_enabled())


def omp_max_threads() -> int:
    return fr_omp_max_threads()


def isa_path() -> str:
    """The code path the loader picked for the multi-versioned (FR_CLONES) loops."""
    if not FR_HAVE_CLONES:
        return "baseline (no function multi-versioning in this build)"
    return ("x86-64 baseline", "AVX2+FMA (x86-64-v3)", "AVX-512 (x86-64-v4)")[fr_isa_level()]
