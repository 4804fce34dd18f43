"""Timing helpers shared by the benchmarks: median wall time of repeats, optional PyTorch."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np


@contextlib.contextmanager
def no_gc():
    """Python's garbage collector off while timing (as ``timeit`` does): a collection landing in
    a timed call added up to tens of microseconds to ops that take a few."""
    was_on = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def median_ms(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs, in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    with no_gc():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e3


def rounds_ms(fns: dict[str, Callable[[], object]], repeats: int,
              pause_before: set = frozenset(), rewarm: bool = False) -> dict[str, float]:
    """Median ms of each callable, timed in rounds (one call of each per round, in order) so that
    machine load from elsewhere hits all of them alike. The names in ``pause_before`` start
    groups (one runtime's calls: fastres fwd, bwd; PyTorch fwd, bwd): a 50 ms pause before each
    group lets another OpenMP runtime's spinning threads go idle first, and with ``rewarm`` the
    group's calls then run untimed, in order, for 20 ms, so that no short op is timed waking its
    threads and core (in a training step the op before it keeps them awake)."""
    for fn in fns.values():
        fn()  # warm-up
    names = list(fns)
    starts = [i for i, k in enumerate(names) if k in pause_before] or [0]
    groups = [names[a:b] for a, b in zip(starts, starts[1:] + [len(names)])]
    times: dict[str, list[float]] = {k: [] for k in fns}
    with no_gc():
        for _ in range(repeats):
            for group in groups:
                if group[0] in pause_before:
                    time.sleep(0.05)
                    t_end = time.perf_counter() + (0.02 if rewarm else 0.0)
                    while time.perf_counter() < t_end:
                        for k in group:
                            fns[k]()
                for k in group:
                    t0 = time.perf_counter()
                    fns[k]()
                    times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def try_torch():
    """The torch module, or None when it is not importable (it is never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine_info(threads: int) -> dict:
    import fastres
    from fastres._config import blas_info
    from fastres._kernels import _runtime

    torch = try_torch()
    return {
        "fastres": fastres.__version__,
        "numpy": np.__version__,
        "torch": torch.__version__ if torch else None,
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "threads": threads,
        "isa_path": _runtime.isa_path(),
        "blas": [f"{b['library']} {b['version']}" for b in blas_info()],
    }


def write_json(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A GitHub-flavoured markdown table (pastes into README and notes as is)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.rjust(w) for c, w in zip(cells, widths)) + " |"
    print(line(headers))
    print("|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    for r in rows:
        print(line(r))
