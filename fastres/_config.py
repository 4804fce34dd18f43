"""Thread policy: one number of threads, resolved once and passed down to every kernel.

Kernels parallelise with OpenMP over batch or batch x channel and call BLAS from inside those
regions, so the BLAS that ``scipy.linalg.cython_blas`` uses is held to one thread (via
threadpoolctl) when fastres is imported: OpenMP and BLAS threads never multiply.
"""

from __future__ import annotations

import glob
import os

__all__ = ["get_num_threads", "set_num_threads", "resolve_threads", "blas_info"]

_num_threads: int | None = None
_blas_libs: list = []
# More threads than any CPU has: the OpenMP runtime kills the process when it cannot create
# the threads asked for (n_threads=100000 segfaulted; 2**30 aborted allocating their stacks), and
# the kernels' per-thread scratch grows with the count. _common.pxd's check_threads agrees.
MAX_THREADS = 1024


def _threads_for(env: str) -> int:
    env = env.split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# Read once, at import, as the OpenMP runtime reads OMP_NUM_THREADS once at start-up (and
# PyTorch likewise): looking it up on every op call cost ~1 us of a few-microsecond call.
_DEFAULT_THREADS = _threads_for(os.environ.get("OMP_NUM_THREADS", ""))


def get_num_threads() -> int:
    """Number of threads the kernels use (``set_num_threads``, else ``OMP_NUM_THREADS`` as it
    was when fastres was imported, else the CPUs this process may run on)."""
    return _num_threads if _num_threads is not None else _DEFAULT_THREADS


def set_num_threads(n: int | None) -> None:
    """Set the number of kernel threads; ``None`` restores the default."""
    global _num_threads
    if n is not None and (isinstance(n, bool) or not isinstance(n, int)
                          or not 1 <= n <= MAX_THREADS):
        raise ValueError(f"set_num_threads: expected an int in [1, {MAX_THREADS}] or None, "
                         f"got {n!r}")
    _num_threads = n


def resolve_threads(n_threads: int | None, op: str = "resolve_threads") -> int:
    """The thread count for one call of op: an explicit ``n_threads`` or the global setting."""
    if n_threads is None:
        return _num_threads if _num_threads is not None else _DEFAULT_THREADS
    if (isinstance(n_threads, bool) or not isinstance(n_threads, int)
            or not 1 <= n_threads <= MAX_THREADS):
        raise ValueError(f"{op}: expected n_threads to be an int in [1, {MAX_THREADS}] or None, "
                         f"got {n_threads!r}")
    return n_threads


def _last_level_cache_bytes(root: str = "/sys/devices/system/cpu/cpu0/cache") -> int:
    """The largest cache of CPU 0 as Linux describes it (what lscpu prints), 0 where unknown.
    Not glibc's sysconf(_SC_LEVEL3_CACHE_SIZE): on AMD EPYC it reports the whole package's L3,
    8x the slice this CPU shares."""
    sizes = [0]
    for index in glob.glob(os.path.join(root, "index*", "size")):
        try:
            with open(index) as f:
                text = f.read().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text.rstrip("KMG")
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes)


# Elementwise passes that touch at least this many bytes (inputs and output) write their output
# with streaming stores: it could not stay in the last-level cache beside the inputs anyway, and
# a streaming store skips reading each destination line first. Batch norm's normalising passes
# and the elementwise kernels use it (bench_ops, batch 128, 2 threads, a Zen 1 EPYC with an 8 MB
# L3, same-process A/B: batch norm 16@32x32 forward + backward 3.23-3.38 -> 2.89-3.06 ms, ReLU
# 2.28-2.62 -> 1.71-1.79 ms; max pooling's 2x2 backward got 15% slower with it and does not).
# A pass of exactly the cache's size streams too: batch norm 32@16x16's forward (4 MB in, 4 MB
# out) streaming left its backward's operands cached, forward + backward 1.42-1.44 -> 1.34-1.35
# ms (bench_ops, alternated twice; ResNet-20 training steps unchanged, A/B in one process).
# Outputs of smaller passes stay in the cache for the op that reads them next.
STREAM_FROM_BYTES = _last_level_cache_bytes() or 32 * 2**20  # unknown: a large L3's size


def streaming(*arrays) -> bool:
    """Whether a pass over these arrays (its inputs and its output; None for an absent operand)
    should stream its output."""
    total = 0
    for a in arrays:
        if a is not None:
            total += a.nbytes
    return total >= STREAM_FROM_BYTES


def _hold_blas_to_one_thread() -> None:
    """Limit the BLAS behind scipy.linalg.cython_blas to one thread.

    The library is found by its path (scipy wheels bundle their own OpenBLAS under
    ``scipy.libs``); if it cannot be told apart (a shared system BLAS), every BLAS is limited.
    """
    import scipy
    import scipy.linalg.cython_blas  # noqa: F401  (loads the library)
    from threadpoolctl import ThreadpoolController

    scipy_root = os.path.dirname(os.path.dirname(os.path.abspath(scipy.__file__)))
    blas = [lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"]
    own = [
        lib
        for lib in blas
        if os.path.abspath(lib.filepath).startswith(os.path.join(scipy_root, "scipy"))
    ]
    for lib in own or blas:
        lib.set_num_threads(1)
    _blas_libs[:] = own or blas


def blas_info() -> list[dict]:
    """The BLAS libraries fastres calls (held to one thread)."""
    return [
        {"library": lib.internal_api, "version": lib.version, "path": lib.filepath,
         "architecture": getattr(lib, "architecture", None), "threads": lib.num_threads}
        for lib in _blas_libs
    ]


_hold_blas_to_one_thread()
