"""Save and load models: weights and buffers in an ``.npz`` plus the architecture as JSON.

The file holds one array per ``state_dict`` key and ``__fastres__``, a uint8 array of UTF-8 JSON
``{"format": 1, "arch": {"builder": ..., "kwargs": {...}}}``. Everything reads back with
``np.load(..., allow_pickle=False)``; nothing is pickled. Writes are atomic: a temporary file in
the destination directory, then ``os.replace``.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np

from fastres.layers import Module, deferred_init

__all__ = ["atomic_write", "load", "load_weights", "save"]

META_KEY = "__fastres__"
FORMAT = 1


def save(model: Module, path: str | os.PathLike) -> None:
    """Write ``model`` (weights, buffers and, when built by a ``fastres.models`` builder, its
    architecture) to ``path`` atomically. ``path`` is used as given (no ``.npz`` is appended)."""
    if not isinstance(model, Module):
        raise TypeError(f"save: expected a fastres Module, got {type(model).__name__}")
    state = model.state_dict()
    if META_KEY in state:
        raise ValueError(f"save: the model has a parameter named {META_KEY!r}, which is reserved")
    meta = {"format": FORMAT, "arch": getattr(model, "arch", None)}
    state[META_KEY] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    atomic_write(path, lambda f: np.savez(f, **state))


def atomic_write(path: str | os.PathLike, write) -> None:
    """``write(binary file)`` into a temporary file beside ``path``, fsync, then ``os.replace``:
    a crash leaves either the old file or the new one, never a torn file."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
    with np.load(os.fspath(path), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    raw = arrays.pop(META_KEY, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"load: {os.fspath(path)!r} is not a fastres model file "
                         f"(no {META_KEY!r} record)")
    meta = json.loads(raw.tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT:
        raise ValueError(f"load: unsupported fastres file format {meta.get('format')!r} "
                         f"(expected {FORMAT})")
    return meta, arrays


def load(path: str | os.PathLike, model: Module | None = None) -> Module:
    """Rebuild the saved model from the file alone and load its weights; with ``model`` given,
    load the weights into it instead. Keys and shapes must match exactly (a ``ValueError`` names
    the first mismatching key and both shapes)."""
    meta, arrays = _read(path)
    if model is None:
        arch = meta.get("arch")
        if not arch:
            raise ValueError(f"load: {os.fspath(path)!r} holds no architecture (the model was not "
                             "built by a fastres.models builder); pass model= to load weights")
        from fastres.models import BUILDERS

        builder = BUILDERS.get(arch.get("builder"))
        if builder is None:
            raise ValueError(f"load: unknown builder {arch.get('builder')!r} "
                             f"(known: {sorted(BUILDERS)})")
        with deferred_init():  # the file supplies every weight
            model = builder(**arch.get("kwargs", {}))
    model.load_state_dict(arrays)
    return model


def load_weights(model: Module, path: str | os.PathLike) -> Module:
    """Load the weights and buffers in ``path`` into ``model`` (strict)."""
    return load(path, model)
