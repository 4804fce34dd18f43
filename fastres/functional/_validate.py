"""Input validation shared by the functional ops.

Every check raises ValueError/TypeError naming the op, what was expected and what was received
(shapes in full). Arrays come back C-contiguous, which is what the kernels require.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_array(op: str, name: str, x, *, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """Check that ``x`` is a non-empty float32/float64 ndarray (of ``ndim`` dims); return it
    C-contiguous."""
    if not isinstance(x, np.ndarray):
        raise TypeError(
            f"{op}: expected {name} to be a numpy.ndarray of float32 or float64, "
            f"got {type(x).__name__}"
        )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{op}: expected {name} of dtype float32 or float64, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        what = f"{ndim}-D {name}" + (f" {layout}" if layout else "")
        raise ValueError(f"{op}: expected {what}, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{op}: expected a non-empty {name}, got shape {x.shape}")
    return np.ascontiguousarray(x)


def same_dtype(op: str, **arrays) -> np.dtype:
    """All given (non-None) arrays share one dtype; return it."""
    given = {k: v for k, v in arrays.items() if v is not None}
    dtypes = {v.dtype for v in given.values()}
    if len(dtypes) > 1:
        got = ", ".join(f"{k}={v.dtype}" for k, v in given.items())
        raise TypeError(f"{op}: expected all operands to share one dtype, got {got}")
    return dtypes.pop()


def shape_is(op: str, name: str, x: np.ndarray, expected: tuple) -> None:
    if x.shape != tuple(expected):
        raise ValueError(f"{op}: expected {name} of shape {tuple(expected)}, got {x.shape}")


def int_pair(op: str, name: str, value, *, minimum: int) -> tuple[int, int]:
    """An int or an (h, w) pair of ints, each >= minimum."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    ok = len(items) == 2 and all(
        type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))
        for v in items
    )
    if not ok:
        raise TypeError(f"{op}: expected {name} to be an int or a pair of ints, got {value!r}")
    h, w = int(items[0]), int(items[1])
    if h < minimum or w < minimum:
        raise ValueError(f"{op}: expected {name} >= {minimum}, got {value!r}")
    return h, w


def positive_int(op: str, name: str, value) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{op}: expected {name} to be a positive int, got {value!r}")
    return int(value)


def real_number(op: str, name: str, value, *, lo: float, hi: float, hi_open: bool = False) -> float:
    """A finite real in [lo, hi] (or [lo, hi) with hi_open)."""
    if type(value) is not float and (isinstance(value, bool)
                                     or not isinstance(value, numbers.Real)):
        raise TypeError(f"{op}: expected {name} to be a real number, got {value!r}")
    v = float(value)
    if not (lo <= v <= hi) or (hi_open and v == hi):
        interval = f"[{lo}, {hi})" if hi_open else f"[{lo}, {hi}]"
        raise ValueError(f"{op}: expected {name} in {interval}, got {value!r}")
    return v


def out_size(op: str, dim: str, size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a window op along one axis; raises if the window does not fit."""
    if kernel > size + 2 * padding:
        raise ValueError(
            f"{op}: kernel {dim} {kernel} is larger than the padded input {dim} "
            f"{size} + 2*{padding} = {size + 2 * padding}"
        )
    return (size + 2 * padding - kernel) // stride + 1
