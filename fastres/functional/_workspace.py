"""Arrays reused between calls, so a training step does not allocate (and page-fault) its big
arrays afresh every time (issue 3).

- ``scratch``: memory an op needs only while it runs (im2col columns, padded images, per-block
  weight-gradient partials). One growing buffer per role, dtype and Python thread, shared by
  every op: a call takes a view of its first elements. Contents are arbitrary, as with
  ``np.empty``; the kernels overwrite what they read.
- ``kept``: an array remembered in a caller-owned dict (a layer's own arrays, or the
  ``workspace=`` of an op whose cache holds an array, such as max pooling's argmax), returned
  again while the shape and dtype stay the same.
"""

from __future__ import annotations

import math
import threading

import numpy as np

__all__ = ["clear_scratch", "kept", "scratch"]

_local = threading.local()


def scratch(role: str, shape: tuple, dtype) -> np.ndarray:
    """A C-contiguous ``np.empty``-like array for use during one op call only.

    It is a view of this thread's buffer for ``(role, dtype)``, which grows to the largest size
    asked for; two arrays an op needs at the same time must therefore have different roles.
    """
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    bufs = _local.__dict__.setdefault("bufs", {})
    buf = bufs.get((role, dtype))
    if buf is None or buf.size < size:
        buf = np.empty(max(size, 1), dtype)
        bufs[(role, dtype)] = buf
    return buf[:size].reshape(shape)


def clear_scratch() -> None:
    """Release this thread's scratch buffers (they are reallocated on the next op)."""
    _local.__dict__.pop("bufs", None)


def kept(store: dict | None, key: str, shape: tuple, dtype, avoid=()) -> np.ndarray:
    """``store[key]`` when it has this shape and dtype and shares no memory with the arrays in
    ``avoid``; otherwise a new ``np.empty`` array, remembered in ``store`` (when not None)."""
    shape, dtype = tuple(shape), np.dtype(dtype)
    a = None if store is None else store.get(key)
    if (a is None or a.shape != shape or a.dtype != dtype
            or any(v is not None and np.may_share_memory(a, v) for v in avoid)):
        a = np.empty(shape, dtype)
        if store is not None:
            store[key] = a
    return a
