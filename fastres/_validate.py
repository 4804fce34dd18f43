"""Input validation shared by both tiers of ops, ``fastres.functional`` and ``fastres.reference``.

Every check raises ValueError/TypeError naming the op, what was expected and what was received
(shapes in full). Arrays come back C-contiguous, which is what the kernels require. The checks of
each op's arguments (the second half) are the contract of API.md, so the same bad input gets the
same error from either tier; the fast path adds its kernels' own limits (sizes that fit an int)
on top.
"""

from __future__ import annotations

import math
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


# ---- each op's arguments, for both tiers ---------------------------------------------------

def conv2d_args(op: str, x, w, b, stride, padding, groups):
    """(x, w, b, (sh, sw), (ph, pw), groups, (H_out, W_out)) of conv2d_forward."""
    x = float_array(op, "x", x, ndim=4, layout="(N, C_in, H, W)")
    w = float_array(op, "w", w, ndim=4, layout="(C_out, C_in/groups, KH, KW)")
    if b is not None:
        b = float_array(op, "b", b, ndim=1, layout="(C_out,)")
    same_dtype(op, x=x, w=w, b=b)
    sh, sw = int_pair(op, "stride", stride, minimum=1)
    ph, pw = int_pair(op, "padding", padding, minimum=0)
    groups = positive_int(op, "groups", groups)
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    if C % groups or F % groups:
        raise ValueError(
            f"{op}: expected groups to divide C_in and C_out, got groups={groups} with "
            f"x {x.shape} and w {w.shape}"
        )
    if Cg * groups != C:
        raise ValueError(
            f"{op}: expected w of shape (C_out, C_in/groups, KH, KW) = ({F}, {C // groups}, "
            f"{KH}, {KW}) for x {x.shape} and groups={groups}, got w {w.shape}"
        )
    if b is not None:
        shape_is(op, "b", b, (F,))
    out = (out_size(op, "height", H, KH, sh, ph), out_size(op, "width", W, KW, sw, pw))
    return x, w, b, (sh, sw), (ph, pw), groups, out


def pool2d_geometry(op: str, x_shape: tuple, kernel_size, stride, padding):
    """((KH, KW), (SH, SW), (PH, PW), (H_out, W_out)) of max/avg_pool2d_forward on an input of
    x_shape (N, C, H, W): stride None is the kernel; padding at most half the kernel (PyTorch's
    rule); the window inside the padded input."""
    H, W = x_shape[2:]
    KH, KW = int_pair(op, "kernel_size", kernel_size, minimum=1)
    SH, SW = (KH, KW) if stride is None else int_pair(op, "stride", stride, minimum=1)
    PH, PW = int_pair(op, "padding", padding, minimum=0)
    if PH > KH // 2 or PW > KW // 2:
        # PyTorch: "pad should be at most half of effective kernel size"
        raise ValueError(
            f"{op}: expected padding <= kernel_size // 2 (pad should be at most half of "
            f"effective kernel size), got padding=({PH}, {PW}) for kernel_size=({KH}, {KW})"
        )
    out = (out_size(op, "height", H, KH, SH, PH), out_size(op, "width", W, KW, SW, PW))
    return (KH, KW), (SH, SW), (PH, PW), out


def subsample2d_args(op: str, x, stride, out_channels):
    """(x, (SH, SW), out_channels) of subsample2d_forward."""
    x = float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")
    C = x.shape[1]
    SH, SW = int_pair(op, "stride", stride, minimum=1)
    Co = C if out_channels is None else positive_int(op, "out_channels", out_channels)
    if Co < C:
        raise ValueError(f"{op}: expected out_channels >= the {C} channels of x {x.shape}, "
                         f"got {out_channels}")
    return x, (SH, SW), Co


def subsample2d_grad(op: str, dout, x_shape: tuple, stride: tuple, dtype) -> np.ndarray:
    """subsample2d_backward's dout: N images of at least the C channels of x, on the
    subsampled planes, of the forward's dtype."""
    N, C, H, W = x_shape
    SH, SW = stride
    dout = float_array(op, "dout", dout, ndim=4, layout="(N, C_out, H_out, W_out)")
    if dout.shape[0] != N or dout.shape[1] < C or dout.shape[2:] != (-(-H // SH), -(-W // SW)):
        raise ValueError(f"{op}: expected dout of shape ({N}, >= {C}, {-(-H // SH)}, "
                         f"{-(-W // SW)}), got {dout.shape}")
    if dout.dtype != dtype:
        raise TypeError(f"{op}: expected dout of dtype {dtype}, got {dout.dtype}")
    return dout


def _bn_vector(op: str, name: str, v, C: int) -> np.ndarray:
    v = float_array(op, name, v, ndim=1, layout="(C,)")
    shape_is(op, name, v, (C,))
    return v


def _running_stat(op: str, name: str, v, C: int) -> np.ndarray:
    """A running statistic that training updates in place: a copy would silently lose the
    update, so it must be the caller's own writable C-contiguous (C,) array."""
    float_array(op, name, v, ndim=1, layout="(C,)")  # type, dtype, ndim
    shape_is(op, name, v, (C,))
    if not v.flags.c_contiguous:
        raise ValueError(
            f"{op}: expected {name} to be C-contiguous (it is updated in place when training), "
            f"got strides {v.strides}"
        )
    if not v.flags.writeable:
        raise ValueError(
            f"{op}: expected {name} to be writable (it is updated in place when training), "
            "got a read-only array"
        )
    return v


def batch_norm2d_args(op: str, x, gamma, beta, running_mean, running_var, training, momentum,
                      eps):
    """(x, gamma, beta, running_mean, running_var, training, momentum, eps) of
    batch_norm2d_forward; when training the running statistics are the caller's own arrays,
    writable, C-contiguous and apart from the other operands (they are updated in place)."""
    x = float_array(op, "x", x, ndim=4, layout="(N, C, H, W)")
    N, C, H, W = x.shape
    gamma = _bn_vector(op, "gamma", gamma, C)
    beta = _bn_vector(op, "beta", beta, C)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: expected training to be a bool, got {training!r}")
    training = bool(training)
    if training:
        running_mean = _running_stat(op, "running_mean", running_mean, C)
        running_var = _running_stat(op, "running_var", running_var, C)
    else:  # only read
        running_mean = _bn_vector(op, "running_mean", running_mean, C)
        running_var = _bn_vector(op, "running_var", running_var, C)
    same_dtype(op, x=x, gamma=gamma, beta=beta, running_mean=running_mean,
               running_var=running_var)
    if training:
        if N * H * W == 1:  # PyTorch's message and check (the unbiased variance needs M > 1)
            raise ValueError(
                f"{op}: expected more than 1 value per channel when training, "
                f"got input size {x.shape}"
            )
        # Written while the other operands are read: they must not overlap.
        for stat_name, stat in (("running_mean", running_mean), ("running_var", running_var)):
            for name, other in (("x", x), ("gamma", gamma), ("beta", beta)):
                if np.may_share_memory(stat, other):
                    raise ValueError(f"{op}: expected {stat_name} not to overlap {name} in "
                                     "memory (it is updated in place when training), got "
                                     "overlapping arrays")
        if np.may_share_memory(running_mean, running_var):
            raise ValueError(f"{op}: expected running_mean and running_var not to overlap in "
                             "memory (they are updated in place when training), got "
                             "overlapping arrays")
    momentum = real_number(op, "momentum", momentum, lo=0.0, hi=1.0)
    eps = real_number(op, "eps", eps, lo=0.0, hi=math.inf, hi_open=True)
    return x, gamma, beta, running_mean, running_var, training, momentum, eps


def linear_args(op: str, x, w, b):
    """(x, w, b) of linear_forward."""
    x = float_array(op, "x", x, ndim=2, layout="(N, in_features)")
    w = float_array(op, "w", w, ndim=2, layout="(out_features, in_features)")
    if b is not None:
        b = float_array(op, "b", b, ndim=1, layout="(out_features,)")
    same_dtype(op, x=x, w=w, b=b)
    if w.shape[1] != x.shape[1]:
        raise ValueError(
            f"{op}: expected w of shape (out_features, {x.shape[1]}) to match x of shape "
            f"{x.shape}, got w of shape {w.shape}"
        )
    if b is not None:
        shape_is(op, "b", b, (w.shape[0],))
    return x, w, b


def add_args(op: str, a, b):
    """(a, b) of add_forward: float arrays of one shape and dtype."""
    a = float_array(op, "a", a)
    b = float_array(op, "b", b)
    same_dtype(op, a=a, b=b)
    shape_is(op, "b", b, a.shape)
    return a, b


def dropout_args(op: str, x, p, training, rng):
    """(x, p, training) of dropout_forward."""
    x = float_array(op, "x", x)
    p = real_number(op, "p", p, lo=0.0, hi=1.0)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"{op}: expected training to be a bool, got {training!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{op}: expected rng to be a numpy.random.Generator, "
                        f"got {type(rng).__name__}")
    return x, p, bool(training)


def labels_arg(op: str, labels, N: int, K: int) -> np.ndarray:
    """Integer class indices, shape (N,); returned as C-contiguous int64. Values outside
    [0, K) are the caller's to check (the fast path's kernel does as it reads them); only uint64
    values could change in the cast, so those are checked here."""
    if not isinstance(labels, np.ndarray):
        raise TypeError(
            f"{op}: expected labels to be a numpy.ndarray of integers, got {type(labels).__name__}"
        )
    if labels.dtype.kind not in "iu":  # signed or unsigned integers; bool is kind "b"
        raise TypeError(f"{op}: expected labels of an integer dtype, got {labels.dtype}")
    if labels.shape != (N,):
        raise ValueError(
            f"{op}: expected labels of shape ({N},) to match logits' batch, got {labels.shape}"
        )
    if labels.dtype.kind == "u" and labels.dtype.itemsize == 8 and labels.max() >= K:
        labels_out_of_range(op, labels, K)
    return np.ascontiguousarray(labels, dtype=np.int64)


def labels_out_of_range(op: str, labels: np.ndarray, K: int):
    """Raise for the first label outside [0, K)."""
    i = int(np.flatnonzero((labels < 0) | (labels >= K))[0])
    raise ValueError(f"{op}: expected labels in [0, {K}), got {labels[i]} at index {i}")


def grad_like(op: str, dout, shape: tuple, dtype, layout: str = "") -> np.ndarray:
    """A backward's dout: a float array of the forward output's shape and dtype."""
    dout = float_array(op, "dout", dout, ndim=len(shape), layout=layout)
    shape_is(op, "dout", dout, shape)
    if dout.dtype != dtype:
        raise TypeError(f"{op}: expected dout of dtype {dtype}, got {dout.dtype}")
    return dout


def cache_of(op: str, cache, cls: type, forward: str):
    """The cache a forward returned (a TypeError for anything else, named in full: each tier
    has its own cache classes, of the same names)."""
    if not isinstance(cache, cls):
        got = type(cache)
        raise TypeError(f"{op}: expected cache to be a {cls.__module__}.{cls.__qualname__} "
                        f"from {forward}, got {got.__module__}.{got.__qualname__}")
    return cache
