"""Batch normalisation over (N, H, W) per channel (fast path).

Semantics follow ``torch.nn.functional.batch_norm`` on NCHW input (see ``fastres.reference``).
The kernels read x twice in the training forward (statistics, then the output) and x and dout
twice in the training backward (two sums, then dx); eval backward is a single pass. Statistics
are accumulated in float64 for float32 and float64 input alike (shifted sums, one pass); the
elementwise passes compute in the input dtype, as PyTorch does (see fr_batchnorm.h).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres import arena
from fastres._config import resolve_threads, streaming
from fastres._kernels import _batchnorm as _k
from fastres.functional.activation import add_forward
from fastres._validate import batch_norm2d_args, float_array, same_dtype, shape_is

__all__ = ["batch_norm2d_backward", "batch_norm2d_forward"]

# Elements per work item of the per-channel sums: a channel's N samples are cut into blocks of
# max(1, _BLOCK_ELEMS // (H*W)) samples. Fixed by the shapes (never by the thread count), so
# the sums are bit-identical at any thread count; small enough that a few channels still give
# every thread work (batch 128 at 32x32: 4 blocks per channel).
_BLOCK_ELEMS = 32768


@dataclass(frozen=True)
class BatchNormCache:
    """What ``batch_norm2d_backward`` needs. ``x`` and ``gamma`` are the forward's arrays
    themselves (not copies): do not modify them in place before the backward pass."""

    x: np.ndarray  # (N, C, H, W), C-contiguous
    mean: np.ndarray  # (C,) float64: the batch mean (training) or the running mean (eval)
    inv_std: np.ndarray  # (C,) float64: 1 / sqrt(var + eps), with the same var
    gamma: np.ndarray  # (C,), x's dtype
    training: bool


def _threads_for(op: str, n_threads: int | None, size: int) -> int:
    """At most one thread per block of _BLOCK_ELEMS elements: below that, starting threads costs
    more than it saves (and much more when other processes hold the cores). The results do not
    depend on the thread count, so this changes only the speed."""
    return min(resolve_threads(n_threads, op), -(-size // _BLOCK_ELEMS))


def _blocking(N: int, HW: int) -> tuple[int, int]:
    """(samples per block, number of blocks) for the per-channel sums."""
    block = max(1, _BLOCK_ELEMS // HW)
    return block, -(-N // block)


def _by_channel(stream: bool, x: np.ndarray, n_threads: int) -> bool:
    """Whether the training kernels let each thread own whole channels (see _batchnorm.pyx):
    when the pass streams (its tensors fill the last-level cache), a channel's runs are at
    least a 4 KB page and there are channels enough to share out evenly."""
    N, C, H, W = x.shape
    return stream and H * W * x.itemsize >= 4096 and C >= 4 * n_threads


def batch_norm2d_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                         running_mean: np.ndarray, running_var: np.ndarray, *, training: bool,
                         momentum: float = 0.1, eps: float = 1e-5,
                         residual: np.ndarray | None = None, relu: bool = False,
                         n_threads: int | None = None) -> tuple[np.ndarray, BatchNormCache]:
    """Batch normalisation of NCHW input, per channel over (N, H, W).

    ``out = gamma * (x - mean) / sqrt(var + eps) + beta``, then ``+ residual`` and
    ``max(., 0)`` if asked: the residual block's ``relu(bn(x) + shortcut)`` in one pass.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W), float32 or float64
    gamma, beta : ndarray, shape (C,), x's dtype
        Scale and shift.
    running_mean, running_var : ndarray, shape (C,), x's dtype
        Running statistics. When ``training`` they must be writable and C-contiguous: they are
        updated in place as ``(1 - momentum) * running + momentum * batch_stat``, with the
        unbiased batch variance ``var * M / (M - 1)``, ``M = N * H * W`` (as PyTorch).
    training : bool
        True: normalise with the batch mean and biased batch variance (needs ``M > 1``).
        False: normalise with the running statistics and leave them unchanged.
    momentum : float in [0, 1]
    eps : float >= 0
        Added to the variance before the square root.
    residual : ndarray shaped like x, optional
        Added to the normalised output (before the ReLU).
    relu : bool
        Apply ``max(., 0)`` last. The cache is the batch norm's alone: the caller applies the
        ReLU's gradient (``dout * (out > 0)``) before ``batch_norm2d_backward``.
    n_threads : int, optional
        Kernel threads (default ``fastres.get_num_threads()``); the result does not depend on it.

    Returns
    -------
    out : ndarray, shape (N, C, H, W), x's dtype
    cache : BatchNormCache
        For ``batch_norm2d_backward``; holds ``x`` by reference.
    """
    op = "batch_norm2d_forward"
    x, gamma, beta, running_mean, running_var, training, momentum, eps = batch_norm2d_args(
        op, x, gamma, beta, running_mean, running_var, training, momentum, eps)
    N, C, H, W = x.shape
    if residual is not None:
        residual = float_array(op, "residual", residual, ndim=4, layout="(N, C, H, W)")
        same_dtype(op, x=x, residual=residual)
        shape_is(op, "residual", residual, x.shape)
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"{op}: expected relu to be a bool, got {relu!r}")
    n_threads = _threads_for(op, n_threads, x.size)

    mean = np.empty(C)
    inv_std = np.empty(C)
    out = arena.empty_like(x)
    x3, out3 = x.reshape(N, C, H * W), out.reshape(N, C, H * W)
    res3 = None if residual is None else residual.reshape(N, C, H * W)
    stream = streaming(x, residual, out)
    if training:
        block, n_blocks = _blocking(N, H * W)
        partial = np.empty((C, n_blocks, 2))
        _k.forward_train(x3, gamma, beta, running_mean, running_var, momentum, eps, partial,
                         np.empty((C, 4), x.dtype), mean, inv_std, res3, bool(relu), out3, block,
                         stream, _by_channel(stream, x, n_threads), n_threads)
    else:
        _k.forward_eval(x3, gamma, beta, running_mean, running_var, eps,
                        np.empty((C, 4), x.dtype), mean, inv_std, res3, bool(relu), out3,
                        stream, n_threads)
    return out, BatchNormCache(x, mean, inv_std, gamma, training)


def _check_cache(op: str, cache) -> None:
    """The cache must be what batch_norm2d_forward returned (its arrays reach the kernels)."""
    if not isinstance(cache, BatchNormCache):
        raise TypeError(
            f"{op}: expected the BatchNormCache returned by fastres.functional."
            f"batch_norm2d_forward, got {type(cache).__name__}"
        )
    x = cache.x
    if not (isinstance(x, np.ndarray) and x.ndim == 4 and x.dtype in (np.float32, np.float64)
            and x.flags.c_contiguous and x.size > 0):
        raise ValueError(f"{op}: expected cache.x to be a non-empty C-contiguous 4-D float "
                         f"array, got {getattr(x, 'shape', type(x).__name__)}")
    C = x.shape[1]
    for name, dtype in (("mean", np.float64), ("inv_std", np.float64), ("gamma", x.dtype)):
        v = getattr(cache, name)
        if not (isinstance(v, np.ndarray) and v.shape == (C,) and v.dtype == dtype
                and v.flags.c_contiguous):
            got = f"{v.dtype} {v.shape}" if isinstance(v, np.ndarray) else type(v).__name__
            raise ValueError(f"{op}: expected cache.{name} of dtype {np.dtype(dtype)} and "
                             f"shape {(C,)} (C-contiguous), got {got}")


def batch_norm2d_backward(dout: np.ndarray, cache: BatchNormCache, *,
                          dx_add: np.ndarray | None = None, n_threads: int | None = None,
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``batch_norm2d_forward``.

    Training mode is the full gradient through the batch statistics; eval mode treats the
    running statistics as constants (``dx = dout * gamma / sqrt(running_var + eps)``).

    Parameters
    ----------
    dout : ndarray, shape (N, C, H, W), x's dtype
    cache : BatchNormCache
        From ``batch_norm2d_forward``.
    dx_add : ndarray like x, optional
        The gradient that reaches x by other paths (a residual unit's input); dx then comes
        back as the sum, added as dx is stored (training mode).
    n_threads : int, optional
        Kernel threads (default ``fastres.get_num_threads()``); the result does not depend on it.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)
        All of x's dtype.
    """
    op = "batch_norm2d_backward"
    _check_cache(op, cache)
    x = cache.x
    dout = float_array(op, "dout", dout, ndim=4, layout="(N, C, H, W)")
    shape_is(op, "dout", dout, x.shape)
    if dout.dtype != x.dtype:
        raise TypeError(f"{op}: expected dout of dtype {x.dtype} (as x), got {dout.dtype}")
    if dx_add is not None:
        dx_add = float_array(op, "dx_add", dx_add, ndim=4, layout="(N, C, H, W)")
        same_dtype(op, dout=dout, dx_add=dx_add)
        shape_is(op, "dx_add", dx_add, x.shape)
    n_threads = _threads_for(op, n_threads, x.size)

    N, C, H, W = x.shape
    dx = arena.empty_like(x)
    dgamma = np.empty(C, x.dtype)
    dbeta = np.empty(C, x.dtype)
    block, n_blocks = _blocking(N, H * W)
    partial = np.empty((C, n_blocks, 2))
    shape3 = (N, C, H * W)
    dout3, x3, dx3 = dout.reshape(shape3), x.reshape(shape3), dx.reshape(shape3)
    if cache.training:
        stream = streaming(dout, x, dx_add, dx)
        _k.backward_train(dout3, x3, cache.mean, cache.inv_std, cache.gamma, partial,
                          np.empty((C, 5), x.dtype),
                          None if dx_add is None else dx_add.reshape(shape3), dx3, dgamma,
                          dbeta, block, stream, _by_channel(stream, x, n_threads), n_threads)
    else:
        _k.backward_eval(dout3, x3, cache.mean, cache.inv_std, cache.gamma, partial, dx3,
                         dgamma, dbeta, block, n_threads)
        if dx_add is not None:
            dx = add_forward(dx, dx_add, n_threads=n_threads)[0]
    return dx, dgamma, dbeta
