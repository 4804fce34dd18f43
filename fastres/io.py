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
import zipfile

import numpy as np

from fastres.layers import Module, deferred_init
from fastres.layers.base import parameter_budget

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


def read_archive(op: str, path, key: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The arrays of the ``.npz`` at ``path`` (read with ``allow_pickle=False``) and the JSON
    object stored under ``key`` as UTF-8 bytes, which is popped from them. Anything else than
    such a file (not an archive, truncated, pickled arrays, no or malformed ``key``) is a
    ``ValueError`` naming ``op`` and the file; a missing file stays ``FileNotFoundError``."""
    where = os.fspath(path)
    try:
        z = np.load(where, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{op}: {where!r} is not a readable fastres file: "
                         f"{type(e).__name__}: {e}") from None
    raw = arrays.pop(key, None)
    if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{op}: {where!r} is not a fastres file (no {key!r} record)")
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{op}: {where!r} has a malformed {key!r} record: {e}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{op}: {where!r} has a malformed {key!r} record: expected a JSON "
                         f"object, got {type(meta).__name__}")
    return meta, arrays


def _read(path) -> tuple[dict, dict[str, np.ndarray]]:
    meta, arrays = read_archive("load", path, META_KEY)
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
        kwargs = arch.get("kwargs", {}) if isinstance(arch, dict) else None
        if not isinstance(kwargs, dict):
            raise ValueError(f"load: {os.fspath(path)!r} has a malformed architecture {arch!r} "
                             "(expected {'builder': name, 'kwargs': {...}})")
        from fastres.models import BUILDERS

        name = arch.get("builder")
        builder = BUILDERS.get(name) if isinstance(name, str) else None
        if builder is None:
            raise ValueError(f"load: {os.fspath(path)!r} names an unknown builder {name!r} "
                             f"(known: {sorted(BUILDERS)})")
        # The file supplies every weight, so its arrays bound what the builder may create: a
        # file asking for a million-block network fails here, before it has built it.
        budget = (len(arrays), sum(a.size for a in arrays.values()))
        try:
            with deferred_init(), parameter_budget(*budget):
                model = builder(**kwargs)
        except parameter_budget.Exceeded:
            raise ValueError(f"load: the architecture in {os.fspath(path)!r} ({arch!r}) has more "
                             f"parameters than the file's {budget[0]} arrays of "
                             f"{budget[1]} elements hold") from None
        except TypeError as e:  # arguments the builder does not take
            raise ValueError(f"load: the architecture in {os.fspath(path)!r} ({arch!r}) does "
                             f"not build: {e}") from None
    model.load_state_dict(arrays)
    return model


def load_weights(model: Module, path: str | os.PathLike) -> Module:
    """Load the weights and buffers in ``path`` into ``model`` (strict)."""
    return load(path, model)
