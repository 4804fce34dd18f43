"""The training loop: ``fit`` (epochs of minibatch SGD-style training with checkpoints, exact
resume, best-model tracking and early stopping) and ``evaluate``.

Exact resume: every source of randomness is either the data order/augmentation of epoch ``e``
(drawn from ``np.random.default_rng([seed, e])`` by the loader) or a generator held by a layer
(dropout, stochastic depth), whose state goes into the checkpoint. The checkpoint also holds the
model's ``state_dict`` (parameters and BN running statistics), the optimizer and schedule states,
the history, the best metric and the position (epoch, batch), so resuming replays exactly the
arithmetic of an uninterrupted run and ends with bit-identical weights.

``out_dir`` layout: ``checkpoint.npz`` (written atomically after every epoch, and at the batch
where Ctrl-C was pressed), ``history.json`` / ``history.csv``, ``best.npz`` and ``final.npz``
(``fastres.save`` files). Checkpoints are ``np.savez`` archives of arrays plus one uint8 array of
UTF-8 JSON; nothing is pickled.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fastres.data import BatchLoader, parse_augment
from fastres.functional import softmax_cross_entropy
from fastres.io import atomic_write, read_archive, save
from fastres.layers import Module
from fastres.layers.base import takes_input_options
from fastres.metrics import top_k_correct
from fastres.optim import Optimizer, Schedule

__all__ = ["CHECKPOINT", "History", "NonFiniteLossError", "evaluate", "fit", "read_checkpoint"]

CHECKPOINT = "checkpoint.npz"
_META = "__checkpoint__"
_FORMAT = 1
FIELDS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr",
          "seconds", "images_per_s")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the last good checkpoint is kept."""


class History:
    """Per-epoch records (dicts with the keys in ``FIELDS``; ``val_*`` are None without
    validation data) and why training stopped (``stop_reason``: "completed",
    "early_stopping")."""

    def __init__(self, records: list[dict] | None = None, stop_reason: str | None = None):
        self.records = list(records or [])
        self.stop_reason = stop_reason

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i):
        return self.records[i]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.records)

    def column(self, key: str) -> list:
        return [r[key] for r in self.records]

    def to_json(self) -> str:
        return json.dumps(self.records, indent=1)

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in self.records:
            w.writerow({k: "" if r.get(k) is None else r[k] for k in FIELDS})
        return buf.getvalue()

    def __repr__(self) -> str:
        last = self.records[-1] if self.records else {}
        return (f"History({len(self)} epochs, stop_reason={self.stop_reason!r}, "
                f"last={ {k: last.get(k) for k in ('train_loss', 'val_acc')} })")


# ---- files -------------------------------------------------------------------------------------
def _pack(obj, prefix: str, arrays: dict):
    """JSON-able tree with every ndarray moved to ``arrays`` (replaced by {"__array__": key})."""
    if isinstance(obj, np.ndarray):
        arrays[prefix] = obj
        return {"__array__": prefix}
    if isinstance(obj, dict):
        return {str(k): _pack(v, f"{prefix}/{k}", arrays) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_pack(v, f"{prefix}/{i}", arrays) for i, v in enumerate(obj)]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _unpack(obj, arrays: dict):
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


def _write_checkpoint(path: Path, tree: dict) -> None:
    arrays: dict[str, np.ndarray] = {}
    meta = _pack(tree, "c", arrays)
    arrays[_META] = np.frombuffer(json.dumps({"format": _FORMAT, **meta}).encode(), np.uint8)
    atomic_write(path, lambda f: np.savez(f, **arrays))


def read_checkpoint(path: str | os.PathLike) -> dict:
    """The checkpoint tree written by ``fit``: ``model`` (state_dict), ``optimizer``,
    ``schedule``, ``epoch``/``batch`` (the next position), ``history``, ``best``, ``rng``,
    ``config``."""
    meta, arrays = read_archive("read_checkpoint", path, _META)
    if meta.pop("format", None) != _FORMAT:
        raise ValueError(f"read_checkpoint: unsupported checkpoint format in {os.fspath(path)!r}")
    try:
        return _unpack(meta, arrays)
    except KeyError as e:
        raise ValueError(f"read_checkpoint: {os.fspath(path)!r} refers to an array {e} it does "
                         "not hold") from None


def _generators(model: Module) -> dict[str, np.random.Generator]:
    """Every numpy Generator held by a layer (dropout masks, stochastic depth), by name."""
    out = {}
    for name, m in model.named_modules():
        for attr, v in vars(m).items():
            if isinstance(v, np.random.Generator):
                out[f"{name}:{attr}"] = v
    return out


# ---- data --------------------------------------------------------------------------------------
def _check_xy(who: str, what: str, xy) -> tuple[np.ndarray, np.ndarray]:
    if not (isinstance(xy, (tuple, list)) and len(xy) == 2):
        raise TypeError(f"{who}: expected {what} as an (x, y) pair of arrays, got "
                        f"{type(xy).__name__}")
    x, y = np.asarray(xy[0]), np.asarray(xy[1])
    if x.ndim < 2 or x.dtype.kind != "f":
        raise ValueError(f"{who}: expected {what} images as a float array (N, ...), got shape "
                         f"{x.shape} dtype {x.dtype}")
    if y.shape != (x.shape[0],) or y.dtype.kind not in "iu":
        raise ValueError(f"{who}: expected {what} labels as integers of shape ({x.shape[0]},), "
                         f"got shape {y.shape} dtype {y.dtype}")
    if x.shape[0] == 0:
        raise ValueError(f"{who}: {what} is empty")
    return x, y


# ---- evaluation --------------------------------------------------------------------------------
def evaluate(model: Module, x: np.ndarray, y: np.ndarray, batch_size: int = 256) -> dict:
    """Mean cross-entropy and top-1 / top-5 accuracy of ``model`` on ``(x, y)`` in eval mode
    (the model's mode is restored afterwards).

    Returns ``{"loss": float, "top1": float, "top5": float}`` (fractions in [0, 1]).
    """
    x, y = _check_xy("evaluate", "the data", (x, y))
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"evaluate: expected a positive int batch_size, got {batch_size!r}")
    was_training = model.training
    model.eval()
    loss_sum, c1, c5 = 0.0, 0, 0
    try:
        for s in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[s:s + batch_size], dtype=model.dtype)
            yb = y[s:s + batch_size]
            logits = model.forward(xb)
            loss, _ = softmax_cross_entropy(logits, yb)
            loss_sum += loss * len(yb)
            a, b = top_k_correct(logits, yb, (1, 5))
            c1, c5 = c1 + a, c5 + b
    finally:
        model.train(was_training)
    n = len(x)
    return {"loss": loss_sum / n, "top1": c1 / n, "top5": c5 / n}


# ---- Ctrl-C ------------------------------------------------------------------------------------
class _GracefulStop:
    """In the main thread, the first Ctrl-C only sets ``requested`` so training stops at the
    next batch boundary (where the state is consistent and can be checkpointed); a second
    Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._prev = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._prev = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self._prev is not None:
            signal.signal(signal.SIGINT, self._prev)


def _progress_bar(progress, total, desc):
    if progress is None:
        progress = sys.stdout.isatty()
    if progress is not True:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, desc=desc, leave=False, unit="batch", dynamic_ncols=True)


# ---- fit ---------------------------------------------------------------------------------------
def fit(model: Module, train, val, optimizer: Optimizer, schedule: Schedule | None = None, *,
        epochs: int, batch_size: int, augment=None, seed: int = 0,
        out_dir: str | os.PathLike | None = None, resume: bool = False,
        early_stopping: int | None = None, label_smoothing: float = 0.0,
        progress: bool | None = None, on_epoch: Callable[[dict], None] | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs of shuffled minibatches.

    Parameters
    ----------
    model : a fastres Module mapping (N, C, H, W) images to (N, K) logits.
    train, val : ``(x, y)`` pairs (float images, int labels); ``val`` may be None.
    optimizer : a ``fastres.optim`` optimizer over the model's parameters.
    schedule : a ``fastres.optim`` schedule, stepped per batch or per epoch as its ``interval``
        says; ``ReduceLROnPlateau`` receives the validation error (the training loss without
        ``val``).
    epochs, batch_size : the last batch of an epoch may be smaller.
    augment : None, a ``fastres.data.parse_augment`` spec ("crop,flip") or its callable.
    seed : data order and augmentation of epoch ``e`` come from ``default_rng([seed, e])``.
    out_dir : where ``checkpoint.npz``, ``history.json``/``.csv``, ``best.npz`` and
        ``final.npz`` go (created if needed); None keeps everything in memory.
    resume : continue from ``out_dir/checkpoint.npz`` (exactly; start fresh if there is none).
        Without it an existing checkpoint is never overwritten (``FileExistsError``).
    early_stopping : stop after this many epochs without a better monitored metric
        (validation top-1, else training accuracy); None trains all epochs.
    label_smoothing : passed to ``softmax_cross_entropy``.
    progress : tqdm bar and per-epoch lines; None = only when stdout is a terminal.
    on_epoch : called with each epoch's record after it is saved.

    Returns
    -------
    History

    Raises
    ------
    NonFiniteLossError
        when the loss becomes NaN/inf (the previous epoch's checkpoint is kept).
    KeyboardInterrupt
        after Ctrl-C, once a checkpoint of the current batch position has been written.
    """
    who = "fit"
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a fastres Module, got {type(model).__name__}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{who}: expected a fastres.optim optimizer, got "
                        f"{type(optimizer).__name__}")
    if schedule is not None and not isinstance(schedule, Schedule):
        raise TypeError(f"{who}: expected a fastres.optim schedule or None, got "
                        f"{type(schedule).__name__}")
    for name, v, lo in (("epochs", epochs, 1), ("batch_size", batch_size, 1)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{who}: expected {name} to be an int >= {lo}, got {v!r}")
    epochs, batch_size = int(epochs), int(batch_size)
    own = {id(p) for p in model.parameters()}
    foreign = sum(id(p) not in own for g in optimizer.param_groups for p in g["params"])
    if foreign:
        raise ValueError(f"{who}: {foreign} of the optimizer's parameters are not the model's "
                         "(an optimizer built over another model would train nothing)")
    if early_stopping is not None and (isinstance(early_stopping, bool) or
                                       not isinstance(early_stopping, int) or early_stopping < 1):
        raise ValueError(f"{who}: expected early_stopping to be a positive int (patience in "
                         f"epochs) or None, got {early_stopping!r}")
    if (isinstance(label_smoothing, bool) or not isinstance(label_smoothing, (int, float))
            or not 0.0 <= label_smoothing <= 1.0):
        raise ValueError(f"{who}: expected label_smoothing in [0, 1], got {label_smoothing!r}")
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"{who}: expected a non-negative int seed, got {seed!r}")
    x_train, y_train = _check_xy(who, "train", train)
    x_val, y_val = _check_xy(who, "val", val) if val is not None else (None, None)
    if isinstance(augment, str):
        augment = parse_augment(augment)
    if augment is not None and not callable(augment):
        raise TypeError(f"{who}: expected augment to be None, a spec string or a callable, got "
                        f"{type(augment).__name__}")

    out = None if out_dir is None else Path(out_dir)
    ckpt = None if out is None else out / CHECKPOINT
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if ckpt.exists() and not resume:
            raise FileExistsError(f"{who}: {ckpt} already exists; pass resume=True (--resume) to "
                                  "continue that run, or choose another out_dir")
    if resume and out is None:
        raise ValueError(f"{who}: resume=True needs out_dir (where the checkpoint is)")

    config = {"seed": int(seed), "batch_size": int(batch_size), "n_train": len(x_train),
              "label_smoothing": float(label_smoothing)}
    gens = _generators(model)
    history = History()
    start_epoch, start_batch = 0, 0
    best, bad_epochs = None, 0
    partial = {"loss_sum": 0.0, "correct": 0, "seen": 0, "seconds": 0.0}

    if resume and ckpt.exists():
        c = read_checkpoint(ckpt)
        missing = sorted({"config", "model", "optimizer", "schedule", "rng", "history", "epoch",
                          "batch", "best", "bad_epochs", "partial"} - set(c))
        if missing or not isinstance(c["config"], dict):
            raise ValueError(f"{who}: cannot resume {ckpt}: it is not a fit() checkpoint "
                             f"(missing {missing or ['a config']})")
        for k, v in config.items():
            if c["config"].get(k) != v:
                raise ValueError(f"{who}: cannot resume {ckpt}: it was written with {k}="
                                 f"{c['config'].get(k)!r}, this call has {k}={v!r}")
        model.load_state_dict(c["model"])
        optimizer.load_state_dict(c["optimizer"])
        if (schedule is None) != (c["schedule"] is None):
            raise ValueError(f"{who}: cannot resume {ckpt}: the checkpoint was written "
                             f"{'without' if c['schedule'] is None else 'with'} a schedule")
        if schedule is not None:
            schedule.load_state_dict(c["schedule"])
        for name, state in c["rng"].items():
            if name not in gens:
                raise ValueError(f"{who}: cannot resume {ckpt}: the model has no generator "
                                 f"{name!r}")
            gens[name].bit_generator.state = state
        history = History(c["history"])
        start_epoch, start_batch = int(c["epoch"]), int(c["batch"])
        best, bad_epochs = c["best"], int(c["bad_epochs"])
        partial = c["partial"]

    loader = BatchLoader(x_train, y_train, batch_size, shuffle=True, augment=augment, seed=seed)
    n_batches = len(loader)

    def state_tree(epoch, batch, part):
        return {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "schedule": None if schedule is None else schedule.state_dict(),
                "epoch": epoch, "batch": batch, "partial": part, "history": history.records,
                "best": best, "bad_epochs": bad_epochs, "config": config,
                "rng": {k: g.bit_generator.state for k, g in gens.items()},
                "arch": getattr(model, "arch", None)}

    def write_history():
        atomic_write(out / "history.json", lambda f: f.write(history.to_json().encode()))
        atomic_write(out / "history.csv", lambda f: f.write(history.to_csv().encode()))

    # A run resumed after early stopping has stopped already (its patience ran out).
    stopped = early_stopping is not None and bad_epochs >= early_stopping and start_batch == 0
    history.stop_reason = "early_stopping" if stopped else None
    monitor = "val_acc" if x_val is not None else "train_acc"
    with _GracefulStop() as stop:
        for epoch in range(start_epoch, epochs):
            if history.stop_reason is not None:
                break
            model.train()
            part = partial if epoch == start_epoch else {"loss_sum": 0.0, "correct": 0,
                                                         "seen": 0, "seconds": 0.0}
            # the epoch's first learning rate (its record's "lr"), kept across a mid-epoch stop
            lr0 = part.setdefault("lr", optimizer.lr)
            first = start_batch if epoch == start_epoch else 0
            bar = _progress_bar(progress, n_batches, f"epoch {epoch + 1}/{epochs}")
            if bar is not None:
                bar.update(first)
            t0 = time.perf_counter()
            try:
                for b, (xb, yb) in enumerate(loader.iter_epoch(epoch)):
                    if b < first:  # replays the loader's randomness; skips the work
                        continue
                    xb = np.ascontiguousarray(xb, dtype=model.dtype)
                    optimizer.zero_grad()
                    logits = model.forward(xb)
                    loss, dlogits = softmax_cross_entropy(logits, yb,
                                                          label_smoothing=label_smoothing)
                    if not math.isfinite(loss):
                        where = (f"; the last good checkpoint (epoch {epoch}) is kept in {ckpt}"
                                 if ckpt is not None and ckpt.exists() else "")
                        raise NonFiniteLossError(
                            f"{who}: the training loss became {loss} at epoch {epoch + 1}, batch "
                            f"{b + 1}{where}. Lower the learning rate (or check the data) and "
                            "resume.")
                    # The images need no gradient: the first convolution skips computing it.
                    if takes_input_options(model):
                        model.backward(dlogits, input_grad=False)
                    else:  # a user's own Module: its backward takes dy alone
                        model.backward(dlogits)
                    optimizer.step()
                    if schedule is not None and schedule.interval == "batch":
                        schedule.step()
                    part["loss_sum"] += loss * len(yb)
                    part["correct"] += int((logits.argmax(axis=1) == yb).sum())
                    part["seen"] += len(yb)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{part['loss_sum'] / part['seen']:.4f}",
                                        acc=f"{part['correct'] / part['seen']:.4f}", refresh=False)
                    if stop.requested:
                        part["seconds"] += time.perf_counter() - t0
                        if ckpt is not None:
                            _write_checkpoint(ckpt, state_tree(epoch, b + 1, part))
                        raise KeyboardInterrupt(
                            f"training interrupted at epoch {epoch + 1}, batch {b + 1}"
                            + (f"; checkpoint saved to {ckpt} (resume to continue)" if ckpt
                               else ""))
            finally:
                if bar is not None:
                    bar.close()
            part["seconds"] += time.perf_counter() - t0
            rec = {"epoch": epoch + 1, "train_loss": part["loss_sum"] / part["seen"],
                   "train_acc": part["correct"] / part["seen"], "val_loss": None,
                   "val_acc": None, "val_top5": None, "lr": lr0, "seconds": part["seconds"],
                   "images_per_s": part["seen"] / max(part["seconds"], 1e-9)}
            if x_val is not None:
                ev = evaluate(model, x_val, y_val, max(batch_size, 256))
                rec.update(val_loss=ev["loss"], val_acc=ev["top1"], val_top5=ev["top5"])
            if schedule is not None and schedule.interval == "epoch":
                schedule.step(1.0 - rec["val_acc"] if x_val is not None else rec["train_loss"])
            history.records.append(rec)
            improved = best is None or rec[monitor] > best
            if improved:
                best, bad_epochs = rec[monitor], 0
                if out is not None:
                    save(model, out / "best.npz")
            else:
                bad_epochs += 1
            if early_stopping is not None and bad_epochs >= early_stopping:
                history.stop_reason = "early_stopping"
            if out is not None:
                _write_checkpoint(ckpt, state_tree(epoch + 1, 0, {"loss_sum": 0.0, "correct": 0,
                                                                  "seen": 0, "seconds": 0.0}))
                write_history()
            line = (f"epoch {rec['epoch']:>3}/{epochs}  loss {rec['train_loss']:.4f}  "
                    f"acc {rec['train_acc']:.4f}"
                    + (f"  val_loss {rec['val_loss']:.4f}  val_acc {rec['val_acc']:.4f}"
                       if x_val is not None else "")
                    + f"  lr {rec['lr']:.3g}  {rec['seconds']:.1f}s "
                      f"({rec['images_per_s']:.0f} img/s)")
            if bar is not None:
                print(line, flush=True)
            if on_epoch is not None:
                on_epoch(rec)
        if history.stop_reason is None:
            history.stop_reason = "completed"
        if out is not None:
            save(model, out / "final.npz")
            if not history.records or not (out / "history.json").exists():
                write_history()
    return history
