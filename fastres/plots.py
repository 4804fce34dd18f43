"""PNG figures of training runs and of what a model looks at (matplotlib, optional).

matplotlib is the optional extra ``pip install "fastres[plot]"``; it is imported when a plot is
drawn, never by ``import fastres``. Figures are drawn on matplotlib's Agg canvas directly
(``matplotlib.figure.Figure``, no ``pyplot``): nothing touches the global backend or opens a
window, and nothing stays in memory after the file is written, so it runs on servers and inside
notebooks alike.

Every function writes one PNG to ``path`` of exactly ``size = (width_px, height_px)`` pixels
(``figsize = size / dpi`` at ``dpi``; ``dpi`` only scales text and lines) and returns the path.
Images are NCHW float arrays as the model sees them (normalised): each is displayed min-max
scaled on its own, 1 channel as gray and 3 as RGB.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

__all__ = ["confusion_matrix", "first_layer_filters", "fooling_grid", "learning_curves",
           "misclassified_gallery", "saliency_grid"]

_INSTALL = 'pip install "fastres[plot]"'


def _figure(who: str, size, dpi):
    """A Figure on the Agg canvas of exactly ``size`` pixels at ``dpi``."""
    try:
        import matplotlib  # noqa: F401  (first, so a missing package fails here)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"fastres.plots.{who} needs matplotlib, an optional dependency of "
                          f"fastres: {_INSTALL} (or pip install matplotlib)") from exc
    w, h = _check_size(who, size)
    if isinstance(dpi, bool) or not isinstance(dpi, numbers.Real) or not 10 <= dpi <= 1000:
        raise ValueError(f"{who}: expected dpi between 10 and 1000, got {dpi!r}")
    fig = Figure(figsize=(w / dpi, h / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _check_size(who: str, size) -> tuple[int, int]:
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(v, numbers.Integral) and not isinstance(v, bool) and 16 <= v <= 20000
                  for v in size))
    if not ok:
        raise ValueError(f"{who}: expected size=(width_px, height_px), two ints in [16, 20000], "
                         f"got {size!r}")
    return int(size[0]), int(size[1])


def _save(fig, path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=fig.dpi, format="png")
    return path


def _images(who: str, x, what: str = "images") -> np.ndarray:
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiu":
        raise TypeError(f"{who}: expected {what} as a numeric numpy.ndarray (N, C, H, W), got "
                        + (f"dtype {x.dtype}" if isinstance(x, np.ndarray)
                           else type(x).__name__))
    if x.ndim != 4 or x.shape[0] == 0 or x.shape[1] not in (1, 3):
        raise ValueError(f"{who}: expected {what} of shape (N, C, H, W) with N >= 1 and C = 1 "
                         f"(gray) or 3 (RGB), got shape {x.shape}")
    return x


def _display(img: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W) or (H, W, 3) in [0, 1], min-max scaled (constant -> mid-gray)."""
    a = np.asarray(img, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    a = (a - lo) / (hi - lo) if hi > lo else np.full_like(a, 0.5)
    return a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)


def _show(ax, rgb_or_gray: np.ndarray, **kw) -> None:
    if rgb_or_gray.ndim == 2:
        kw = {"cmap": "gray", "vmin": 0.0, "vmax": 1.0, **kw}
    ax.imshow(rgb_or_gray, interpolation="nearest", **kw)
    ax.set_xticks([])
    ax.set_yticks([])


def _titles(who: str, titles, n: int) -> list:
    if titles is None:
        return [None] * n
    titles = list(titles)
    if len(titles) != n:
        raise ValueError(f"{who}: expected {n} titles (one per image), got {len(titles)}")
    return [None if t is None else str(t) for t in titles]


def _grid(n: int, cols: int | None, who: str = "plots") -> tuple[int, int]:
    if cols is not None and (isinstance(cols, bool) or not isinstance(cols, (int, np.integer))
                             or cols < 1):
        raise ValueError(f"{who}: expected cols to be a positive int or None, got {cols!r}")
    cols = min(n, cols if cols is not None else math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _axes(fig, rows: int, cols: int):
    return np.asarray(fig.subplots(rows, cols, squeeze=False))


# ---- learning curves ---------------------------------------------------------------------------
def _records(who: str, run) -> tuple[str | None, list[dict]]:
    """(default name, records) of one run: a run folder, a history.json, a History, a list of
    per-epoch records or a dict of columns."""
    from fastres.solver import History

    name = None
    if isinstance(run, (str, os.PathLike)):
        p = Path(run)
        f = p / "history.json" if p.is_dir() else p
        if not f.is_file():
            raise FileNotFoundError(f"{who}: no history.json in {os.fspath(p)!r} (expected the "
                                    "out folder of `fastres train --out DIR` / fit(out_dir=))")
        name = (p if p.is_dir() else p.parent).name if f.name == "history.json" else p.stem
        try:
            run = json.loads(f.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{who}: {os.fspath(f)!r} is not a history.json (not JSON: "
                             f"{exc})") from None
    if isinstance(run, History):
        run = run.records
    if isinstance(run, Mapping) and isinstance(run.get("train_acc"), (list, tuple, np.ndarray)):
        cols = {k: list(v) for k, v in run.items() if isinstance(v, (list, tuple, np.ndarray))}
        n = len(cols["train_acc"])
        run = [{k: (v[i] if i < len(v) else None) for k, v in cols.items()} for i in range(n)]
    if not (isinstance(run, (list, tuple)) and run and all(isinstance(r, Mapping) for r in run)):
        raise TypeError(f"{who}: expected a run folder, a history.json path, a History, a list of "
                        f"per-epoch records or a dict of columns, got {type(run).__name__}")
    for i, r in enumerate(run):
        if r.get("train_acc") is None:
            raise ValueError(f"{who}: epoch record {i} has no train_acc (keys: {sorted(r)})")
        if not isinstance(r["train_acc"], numbers.Real):
            raise TypeError(f"{who}: expected a number for train_acc of epoch record {i}, got "
                            f"{r['train_acc']!r}")
    return name, list(run)


def _is_run(obj) -> bool:
    if isinstance(obj, (str, os.PathLike)):
        return True
    from fastres.solver import History

    if isinstance(obj, History):
        return True
    if isinstance(obj, Mapping):
        return "train_acc" in obj
    return isinstance(obj, (list, tuple)) and bool(obj) and \
        all(isinstance(r, Mapping) and "train_acc" in r for r in obj)


def learning_curves(runs, path, *, labels: Sequence[str] | None = None, title: str | None = None,
                    size: tuple[int, int] = (800, 500), dpi: int = 100) -> Path:
    """Training error (dashed) and validation/test error (solid, bold) in % per epoch, several
    runs overlaid, one colour each: the plain-vs-residual figure of He et al. (2015).

    Parameters
    ----------
    runs : one run or a list of runs or a dict ``{legend name: run}``. A run is the out folder
        of ``fastres train --out DIR`` / ``fit(out_dir=)`` (its ``history.json`` is read), a
        path to a history.json, a ``fastres.solver.History``, its list of per-epoch records, or
        a dict of columns (``{"train_acc": [...], "val_acc": [...]}``). Error = 1 - accuracy;
        runs without validation columns get only the dashed curve.
    labels : legend names (default: the folder names, else "run 1", "run 2", ...).
    title, size, dpi : see the module docstring.
    """
    who = "learning_curves"
    if isinstance(runs, Mapping) and "train_acc" not in runs:
        if labels is not None:
            raise ValueError(f"{who}: give names either as the keys of runs or as labels=, not "
                             "both")
        labels, runs = [str(k) for k in runs], list(runs.values())
    elif _is_run(runs):
        runs = [runs]
    elif not isinstance(runs, (list, tuple)):
        raise TypeError(f"{who}: expected a run, a list of runs or a dict {{name: run}}, got "
                        f"{type(runs).__name__}")
    runs = list(runs)
    if not runs:
        raise ValueError(f"{who}: expected at least one run, got none")
    parsed = [_records(who, r) for r in runs]
    if labels is not None:
        labels = [str(s) for s in labels]
        if len(labels) != len(parsed):
            raise ValueError(f"{who}: expected {len(parsed)} labels (one per run), got "
                             f"{len(labels)}")
    else:
        labels = [n if n else f"run {i + 1}" for i, (n, _) in enumerate(parsed)]
    fig = _figure(who, size, dpi)
    ax = fig.subplots()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    handles = []
    for i, ((_, recs), label) in enumerate(zip(parsed, labels)):
        color = f"C{i % 10}"
        epochs = [r.get("epoch", j + 1) for j, r in enumerate(recs)]
        ax.plot(epochs, [100 * (1 - r["train_acc"]) for r in recs], "--", color=color, lw=1.2)
        val = [(e, 100 * (1 - r["val_acc"])) for e, r in zip(epochs, recs)
               if isinstance(r.get("val_acc"), numbers.Real)]
        if val:
            ax.plot(*zip(*val), "-", color=color, lw=2.2, marker="." if len(val) < 30 else None)
        handles.append(Line2D([], [], color=color, lw=2.2, label=label))
    handles += [Line2D([], [], color="0.35", ls="--", lw=1.2, label="training error"),
                Line2D([], [], color="0.35", ls="-", lw=2.2, label="validation/test error")]
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    ax.set_xlabel("epoch")
    ax.set_ylabel("error (%)")
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


# ---- confusion matrix --------------------------------------------------------------------------
def confusion_matrix(cm: np.ndarray, classes: Sequence[str] | None, path, *,
                     title: str | None = None, size: tuple[int, int] = (640, 600),
                     dpi: int = 100) -> Path:
    """A confusion matrix (rows = true class, columns = prediction, as
    ``fastres.metrics.confusion_matrix``): cells coloured by the fraction of their row (recall
    on the diagonal), annotated with the counts when there are at most 20 classes."""
    who = "confusion_matrix"
    if not isinstance(cm, np.ndarray) or cm.dtype.kind not in "iuf":
        raise TypeError(f"{who}: expected cm as a numeric numpy.ndarray (K, K), got "
                        f"{type(cm).__name__}")
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] == 0:
        raise ValueError(f"{who}: expected a square cm of shape (K, K), got shape {cm.shape}")
    k = cm.shape[0]
    classes = [str(i) for i in range(k)] if classes is None else [str(c) for c in classes]
    if len(classes) != k:
        raise ValueError(f"{who}: expected {k} class names for a {cm.shape} matrix, got "
                         f"{len(classes)}")
    rows = cm.sum(axis=1, keepdims=True).astype(np.float64)
    frac = np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    fig = _figure(who, size, dpi)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_xticks(range(k), classes, rotation=90 if max(map(len, classes)) > 3 else 0,
                  fontsize="small")
    ax.set_yticks(range(k), classes, fontsize="small")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for i in range(k):
            for j in range(k):
                v = cm[i, j]
                ax.text(j, i, f"{v:g}" if cm.dtype.kind == "f" else str(v), ha="center",
                        va="center", fontsize="x-small" if k > 10 else "small",
                        color="white" if frac[i, j] > 0.5 else "black")
    if title:
        ax.set_title(title)
    return _save(fig, path)


# ---- saliency, fooling, mistakes ---------------------------------------------------------------
def saliency_grid(images: np.ndarray, maps: np.ndarray, path, titles: Sequence[str] | None = None,
                  *, cols: int | None = None, size: tuple[int, int] | None = None,
                  dpi: int = 100) -> Path:
    """Images above their saliency maps (``fastres.analysis.saliency_map``, each scaled to its
    own maximum, hot colours), as in Simonyan et al. (2013): rows of ``cols`` images (default
    all of them, up to 12), each above a row of their maps.

    ``images`` (N, C, H, W), ``maps`` (N, H, W); ``size`` defaults to 130 x 300 pixels per
    column and pair of rows (at least 320 wide).
    """
    who = "saliency_grid"
    images = _images(who, images)
    n, _, h, w = images.shape
    if not isinstance(maps, np.ndarray) or maps.shape != (n, h, w):
        raise ValueError(f"{who}: expected maps of shape {(n, h, w)} to match images "
                         f"{images.shape}, got {getattr(maps, 'shape', type(maps).__name__)}")
    titles = _titles(who, titles, n)
    blocks, cols = _grid(n, min(n, 12) if cols is None else cols, who)
    fig = _figure(who, size or (min(20000, max(320, 130 * cols)), min(20000, 300 * blocks)),
                  dpi)
    axes = _axes(fig, 2 * blocks, cols)
    for ax in axes.flat:
        ax.set_axis_off()
    for i in range(n):
        top_ax, map_ax = axes[2 * (i // cols), i % cols], axes[2 * (i // cols) + 1, i % cols]
        top_ax.set_axis_on()
        map_ax.set_axis_on()
        _show(top_ax, _display(images[i]))
        m = np.asarray(maps[i], dtype=np.float64)
        top = float(m.max())
        _show(map_ax, m / top if top > 0 else m, cmap="hot", vmin=0.0, vmax=1.0)
        if titles[i]:
            top_ax.set_title(titles[i], fontsize="small")
    for b in range(blocks):
        axes[2 * b, 0].set_ylabel("image")
        axes[2 * b + 1, 0].set_ylabel("saliency")
    return _save(fig, path)


def fooling_grid(originals: np.ndarray, fooled: np.ndarray, path,
                 titles: Sequence[str] | None = None, *, magnify: float | None = None,
                 size: tuple[int, int] | None = None, dpi: int = 100) -> Path:
    """One row per example: the original, the fooling image and their difference magnified
    (gray = no change, lighter = increased), as in the CS231n fooling-image figure.

    The difference is shown on the original's display scale: ``0.5 + magnify * (fooled -
    original) / (max - min of the original)``, clipped to [0, 1]. ``magnify`` defaults to the
    one factor (for all rows) that makes the largest change reach black or white; the column
    title gives it. ``titles`` label the rows (e.g. "7 -> 3, 12 steps"); ``size`` defaults to
    (420, max(160, 140 N)).
    """
    who = "fooling_grid"
    originals = _images(who, originals, "originals")
    fooled = _images(who, fooled, "fooled")
    if fooled.shape != originals.shape:
        raise ValueError(f"{who}: expected fooled of the originals' shape {originals.shape}, got "
                         f"{fooled.shape}")
    if magnify is not None and (isinstance(magnify, bool) or not isinstance(magnify, numbers.Real)
                                or not 0 < magnify < math.inf):
        raise ValueError(f"{who}: expected a positive magnify or None, got {magnify!r}")
    n = len(originals)
    titles = _titles(who, titles, n)
    o = np.asarray(originals, dtype=np.float64)
    span = o.max(axis=(1, 2, 3)) - o.min(axis=(1, 2, 3))
    rel = (np.asarray(fooled, dtype=np.float64) - o) / np.where(span > 0, span, 1.0)[
        :, None, None, None]
    if magnify is None:
        top = float(np.max(np.abs(rel)))
        magnify = 0.5 / top if top > 0 else 1.0
    diff = np.clip(0.5 + magnify * rel, 0.0, 1.0)
    fig = _figure(who, size or (420, max(160, 140 * n)), dpi)
    axes = _axes(fig, n, 3)
    for i in range(n):
        _show(axes[i, 0], _display(o[i]))
        _show(axes[i, 1], _display(fooled[i]))
        _show(axes[i, 2], diff[i, 0] if diff.shape[1] == 1 else diff[i].transpose(1, 2, 0))
        if titles[i]:
            axes[i, 0].set_ylabel(titles[i], fontsize="small")
    for ax, t in zip(axes[0], ("original", "fooling image", f"difference x{magnify:.3g}")):
        ax.set_title(t, fontsize="small")
    return _save(fig, path)


def _field(r, name):
    return r[name] if isinstance(r, Mapping) else getattr(r, name)


def misclassified_gallery(images: np.ndarray, records, path,
                          classes: Sequence[str] | None = None, *, cols: int | None = None,
                          size: tuple[int, int] | None = None, dpi: int = 100) -> Path:
    """The images of ``fastres.analysis.misclassified`` records, each titled with the true class
    and the first and second guesses with their probabilities.

    ``images`` is the array given to ``misclassified`` (records index into it); records are
    ``Misclassified`` objects or dicts with the same keys. ``size`` defaults to 150 x 170 pixels
    per image.
    """
    who = "misclassified_gallery"
    images = _images(who, images)
    records = list(records)
    if not records:
        raise ValueError(f"{who}: no records to show (the model made no mistakes?)")
    try:
        idx = [int(_field(r, "index")) for r in records]
        rows_txt = [(_field(r, "label"), _field(r, "pred"), _field(r, "prob"),
                     _field(r, "second"), _field(r, "second_prob")) for r in records]
    except (KeyError, AttributeError, TypeError) as exc:
        raise TypeError(f"{who}: expected records from fastres.analysis.misclassified (index, "
                        f"label, pred, prob, second, second_prob), got {records[0]!r}") from exc
    bad = [i for i in idx if not 0 <= i < len(images)]
    if bad:
        raise ValueError(f"{who}: record index {bad[0]} is outside images of shape "
                         f"{images.shape}")

    if classes is not None:
        used = [int(c) for r in rows_txt for c in (r[0], r[1], r[3])]
        if min(used) < 0 or max(used) >= len(classes):
            raise ValueError(f"{who}: the records name classes {min(used)}..{max(used)}, "
                             f"classes has {len(classes)} names")

    def name(c):
        return str(c) if classes is None else str(classes[int(c)])

    rows, cols = _grid(len(records), cols, who)
    fig = _figure(who, size or (150 * cols, 170 * rows), dpi)
    axes = _axes(fig, rows, cols)
    for ax in axes.flat[len(records):]:
        ax.set_axis_off()
    for ax, i, (label, pred, prob, second, p2) in zip(axes.flat, idx, rows_txt):
        _show(ax, _display(images[i]))
        ax.set_title(f"#{i} true {name(label)}\n{name(pred)} {prob:.0%}, {name(second)} {p2:.0%}",
                     fontsize="x-small")
    return _save(fig, path)


def first_layer_filters(model, path, *, size: tuple[int, int] | None = None,
                        dpi: int = 100) -> Path:
    """The filters of the model's first convolution, each min-max scaled on its own: RGB for 3
    input channels, gray for 1, and for any other count the mean over input channels (gray).
    ``size`` defaults to 80 pixels per filter (at least 320 x 200)."""
    from fastres.layers import Conv2D, Module

    who = "first_layer_filters"
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a fastres Module, got {type(model).__name__}")
    conv = next(((n, m) for n, m in model.named_modules() if isinstance(m, Conv2D)), None)
    if conv is None:
        raise ValueError(f"{who}: {type(model).__name__} has no Conv2D layer")
    name, conv = conv
    w = np.asarray(conv.weight.data, dtype=np.float64)
    if w.shape[1] not in (1, 3):
        w = w.mean(axis=1, keepdims=True)
    rows, cols = _grid(len(w), None)
    fig = _figure(who, size or (max(320, 80 * cols), max(200, 80 * rows + 30)), dpi)
    axes = _axes(fig, rows, cols)
    for ax in axes.flat[len(w):]:
        ax.set_axis_off()
    for ax, f in zip(axes.flat, w):
        _show(ax, _display(f))
    kh, kw = conv.weight.shape[2:]
    fig.suptitle(f"{name or 'conv'}: {conv.weight.shape[0]} filters {kh}x{kw}, "
                 f"{conv.weight.shape[1]} input channel(s)", fontsize="small")
    return _save(fig, path)
