"""Batch normalisation over (N, H, W) per channel (plain NumPy reference).

Follows ``torch.nn.functional.batch_norm`` on NCHW input: training normalises with the batch mean
and the biased batch variance and updates the running statistics in place with the unbiased one;
eval normalises with the running statistics and leaves them alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fastres._validate import batch_norm2d_args, cache_of, grad_like

__all__ = ["batch_norm2d_backward", "batch_norm2d_forward"]


@dataclass(frozen=True)
class BatchNormCache:
    x_hat: np.ndarray  # (N, C, H, W) normalised input
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps), var the batch or the running variance
    gamma: np.ndarray  # (C,)
    training: bool


def _per_channel(v: np.ndarray) -> np.ndarray:
    """(C,) -> (1, C, 1, 1), to broadcast against NCHW."""
    return v.reshape(1, -1, 1, 1)


def batch_norm2d_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray,
                         running_mean: np.ndarray, running_var: np.ndarray, *, training: bool,
                         momentum: float = 0.1, eps: float = 1e-5,
                         ) -> tuple[np.ndarray, BatchNormCache]:
    """``out = gamma * (x - mean) / sqrt(var + eps) + beta`` per channel.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    gamma, beta : ndarray, shape (C,)
    running_mean, running_var : ndarray, shape (C,)
        Updated in place when ``training``:
        ``running = (1 - momentum) * running + momentum * batch_stat``, with the unbiased batch
        variance ``var * M / (M - 1)``, ``M = N * H * W``.
    training : bool
        Batch statistics (True) or running statistics (False).

    Returns
    -------
    out : ndarray, shape (N, C, H, W), x's dtype
    cache : BatchNormCache
    """
    x, gamma, beta, running_mean, running_var, training, momentum, eps = batch_norm2d_args(
        "batch_norm2d_forward", x, gamma, beta, running_mean, running_var, training, momentum,
        eps)
    if training:
        M = x.size // x.shape[1]  # N * H * W
        mean = x.mean(axis=(0, 2, 3))
        var = ((x - _per_channel(mean)) ** 2).mean(axis=(0, 2, 3))  # biased: divides by M
        running_mean[...] = (1 - momentum) * running_mean + momentum * mean
        running_var[...] = (1 - momentum) * running_var + momentum * var * (M / (M - 1))
    else:
        mean, var = running_mean, running_var
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - _per_channel(mean)) * _per_channel(inv_std)
    out = _per_channel(gamma) * x_hat + _per_channel(beta)
    return out.astype(x.dtype, copy=False), BatchNormCache(x_hat, inv_std, gamma, bool(training))


def batch_norm2d_backward(dout: np.ndarray, cache: BatchNormCache,
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of ``batch_norm2d_forward``.

    Parameters
    ----------
    dout : ndarray, shape (N, C, H, W)
    cache : BatchNormCache

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dgamma, dbeta : ndarray, shape (C,)

    Notes
    -----
    Eval mode is an affine map, so ``dx = dout * gamma * inv_std``. In training the mean and
    variance depend on x too; with ``g = dout * gamma`` and ``M = N * H * W``::

        dx = inv_std / M * (M * g - sum(g) - x_hat * sum(g * x_hat))

    (sums per channel over N, H, W), the CS231n / Ioffe & Szegedy (2015) result.
    """
    op = "batch_norm2d_backward"
    cache = cache_of(op, cache, BatchNormCache, "batch_norm2d_forward")
    x_hat, inv_std, gamma = cache.x_hat, cache.inv_std, cache.gamma
    dout = grad_like(op, dout, x_hat.shape, gamma.dtype, "(N, C, H, W)")
    dbeta = dout.sum(axis=(0, 2, 3))
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3))
    g = dout * _per_channel(gamma)
    if cache.training:
        M = dout.size // dout.shape[1]  # N * H * W
        g_sum = _per_channel(g.sum(axis=(0, 2, 3)))
        gx_sum = _per_channel((g * x_hat).sum(axis=(0, 2, 3)))
        dx = _per_channel(inv_std) / M * (M * g - g_sum - x_hat * gx_sum)
    else:
        dx = g * _per_channel(inv_std)
    dtype = dout.dtype
    return dx.astype(dtype, copy=False), dgamma.astype(dtype), dbeta.astype(dtype)
