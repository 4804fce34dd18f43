"""Memory blocks reused from one training step to the next for activations, gradients and scratch.

The functional ops take their large outputs and scratch buffers from here instead of allocating
them afresh each call. A block is free again when no array uses it any more, and Python's
reference count says exactly that: every array handed out is a view whose ``.base`` is the block,
and every view derived from it (reshape, slice, transpose) references the block too. So a block
still held by a layer's cache, a gradient in flight or a user's variable is never handed out
twice, and no layer has to give anything back by hand. In a training loop whose shapes do not
change, the blocks of step 2 onwards are all reused: no allocation, no page faults.

Small arrays (under 64 KiB) come from ``np.empty``: malloc is cheap for them. When the blocks
held exceed ``max_bytes`` (default 2 GiB, or ``FASTRES_ARENA_MB``), free blocks are dropped before
a new one is allocated, so a change of shapes (another batch size, evaluation) cannot make the
arena grow without bound.

    fastres.arena.stats()          # blocks held, bytes held, bytes in use
    fastres.arena.clear()          # drop every free block
    fastres.arena.set_enabled(False)  # plain np.empty everywhere
"""

from __future__ import annotations

import os
import sys
import threading
from math import prod

import numpy as np

__all__ = ["empty", "empty_like", "clear", "stats", "set_enabled"]

_MIN_BYTES = 1 << 16
_blocks: dict[int, list[np.ndarray]] = {}
# Per size: where the next scan starts, the block handed out last. An output used and dropped
# before the next request of its size (an op called in a loop, a gradient in the backward) is
# handed out again while still in cache (bench_ops, batch norm 64@8x8 after the convolutions
# had left free 2 MB blocks: 0.76 -> 0.64 ms); otherwise the scan moves on, and blocks free up
# in about the order they were handed out, so the next one is usually free.
_cursor: dict[int, int] = {}
_held = 0
_lock = threading.Lock()
_enabled = True
max_bytes = int(os.environ.get("FASTRES_ARENA_MB", "2048")) * 2**20


def _free_index(blocks: list, start: int = 0) -> int:
    """Index of the first block nobody else references, scanning from ``start`` round, or -1."""
    n = len(blocks)
    for j in range(start, start + n):
        i = j % n
        if sys.getrefcount(blocks[i]) <= _FREE_REFS:
            return i
    return -1


def _calibrate() -> int:
    """The reference count ``sys.getrefcount(blocks[i])`` shows for a block only the arena's
    list holds (the exact number depends on the interpreter, so it is measured, the same way)."""
    probe = [np.empty(1, np.uint8)]
    refs = sys.getrefcount(probe[0])
    held = probe[0]
    assert sys.getrefcount(probe[0]) > refs and held is probe[0]
    return refs


_FREE_REFS = _calibrate()


def _drop_free() -> None:
    global _held
    for size, blocks in list(_blocks.items()):
        while (i := _free_index(blocks)) >= 0:
            del blocks[i]
            _held -= size
        if not blocks:
            del _blocks[size]


def empty(shape, dtype=np.float64) -> np.ndarray:
    """An uninitialised C-contiguous array, on a reused block when one of its size is free."""
    global _held
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    nbytes = prod(shape) * dtype.itemsize
    if not _enabled or nbytes < _MIN_BYTES:
        return np.empty(shape, dtype)
    with _lock:
        blocks = _blocks.setdefault(nbytes, [])
        i = _free_index(blocks, _cursor.get(nbytes, 0))
        if i < 0:
            if _held + nbytes > max_bytes:
                _drop_free()
                blocks = _blocks.setdefault(nbytes, [])
            blocks.append(np.empty(nbytes, np.uint8))
            _held += nbytes
            i = len(blocks) - 1
        _cursor[nbytes] = i
        return np.ndarray(shape, dtype, blocks[i])  # a view whose .base is the block


def empty_like(a: np.ndarray) -> np.ndarray:
    if a.nbytes < _MIN_BYTES:  # the small case without empty()'s argument handling
        return np.empty(a.shape, a.dtype)
    return empty(a.shape, a.dtype)


def clear() -> None:
    """Drop every free block (blocks in use stay until their arrays are gone)."""
    with _lock:
        _drop_free()


def stats() -> dict:
    """``{"blocks": n, "bytes_held": ..., "bytes_in_use": ...}``."""
    with _lock:
        busy = sum(size for size, blocks in _blocks.items() for i in range(len(blocks))
                   if sys.getrefcount(blocks[i]) > _FREE_REFS)
        return {"blocks": sum(map(len, _blocks.values())), "bytes_held": _held,
                "bytes_in_use": busy}


def set_enabled(on: bool) -> None:
    """Turn block reuse on or off (off: every array is a fresh ``np.empty``)."""
    global _enabled
    if not isinstance(on, bool):
        raise TypeError(f"arena.set_enabled: expected a bool, got {on!r}")
    with _lock:
        _enabled = on
        if not on:
            _drop_free()
