"""Looking inside a trained classifier: saliency maps, fooling images and its worst mistakes.

- ``saliency_map`` (Simonyan, Vedaldi & Zisserman 2013, "Deep Inside Convolutional Networks"):
  the magnitude of the gradient of a class score with respect to the input pixels, max over
  channels.
- ``fooling_image`` (Szegedy et al. 2013, "Intriguing properties of neural networks", in the
  form of the CS231n assignment): gradient ascent on a target class score until the network
  predicts that class.
- ``misclassified``: the most confident errors, with the runner-up guess.

Every function runs the model in eval mode (running BN statistics, no dropout) and restores its
mode and its parameter gradients afterwards. Scores are logits, before the softmax: the softmax
can be raised by lowering the other classes, the logit only by evidence for its own class.
Images are what the model sees, i.e. normalised (N, C, H, W) arrays, cast to the model's dtype.
"""

from __future__ import annotations

import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from fastres._validate import positive_int
from fastres.layers import Module

__all__ = ["FoolingFailed", "FoolingResult", "Misclassified", "fooling_image", "misclassified",
           "saliency_map"]


# ---- shared checks and plumbing ----------------------------------------------------------------
def _check_model(who: str, model) -> None:
    if not isinstance(model, Module):
        raise TypeError(f"{who}: expected a fastres Module, got {type(model).__name__}")


def _check_images(who: str, x, *, what: str = "x") -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: expected {what} to be a numpy.ndarray of images (N, C, H, W), "
                        f"got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"{who}: expected {what} of a float dtype (normalised images), got "
                        f"{x.dtype}")
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"{who}: expected {what} of shape (N, C, H, W) with N >= 1, got shape "
                         f"{x.shape}")
    return x


def _check_labels(who: str, labels, n: int, *, what: str = "labels") -> np.ndarray:
    if not isinstance(labels, np.ndarray) or labels.dtype.kind not in "iu":
        got = (f"dtype {labels.dtype}" if isinstance(labels, np.ndarray)
               else type(labels).__name__)
        raise TypeError(f"{who}: expected {what} as an integer numpy.ndarray of shape ({n},), "
                        f"got {got}")
    if labels.shape != (n,):
        raise ValueError(f"{who}: expected {what} of shape ({n},) to match the images, got "
                         f"{labels.shape}")
    return labels.astype(np.int64)


def _check_classes(who: str, labels: np.ndarray, k: int, what: str = "labels") -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= k))
    if bad.size:
        raise ValueError(f"{who}: expected {what} in [0, {k}) (the model has {k} classes), got "
                         f"{labels[bad[0]]} at index {bad[0]}")


def _check_logits(who: str, logits, n: int) -> np.ndarray:
    if not isinstance(logits, np.ndarray) or logits.shape[:1] != (n,) or logits.ndim != 2:
        raise ValueError(f"{who}: expected the model to return logits of shape ({n}, K), got "
                         f"{getattr(logits, 'shape', type(logits).__name__)}")
    return logits


@contextmanager
def _inspecting(model: Module):
    """Eval mode, and the model's mode and parameter gradients as they were afterwards (the
    backward passes here must not leak into a training step)."""
    was_training = model.training
    grads = [(p.grad, p.grad.copy()) for p in model.parameters()]
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
        for g, saved in grads:
            np.copyto(g, saved)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


# ---- saliency ----------------------------------------------------------------------------------
def saliency_map(model: Module, x: np.ndarray, labels: np.ndarray, *,
                 batch_size: int = 64) -> np.ndarray:
    """Saliency maps: ``max_c |d score_label / d x[c, h, w]|`` per image (Simonyan et al. 2013).

    Parameters
    ----------
    model : a classifier mapping (N, C, H, W) images to (N, K) logits.
    x : ndarray, shape (N, C, H, W), float (normalised as for the model).
    labels : ndarray of int, shape (N,): the class whose score each map explains (the true
        class, or the prediction).
    batch_size : images per forward/backward pass.

    Returns
    -------
    ndarray, shape (N, H, W), the model's dtype, >= 0.
    """
    who = "saliency_map"
    _check_model(who, model)
    x = _check_images(who, x)
    labels = _check_labels(who, labels, len(x))
    batch_size = positive_int(who, "batch_size", batch_size)
    out = np.empty((x.shape[0], x.shape[2], x.shape[3]), dtype=model.dtype)
    with _inspecting(model):
        for s in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[s:s + batch_size], dtype=model.dtype)
            yb = labels[s:s + batch_size]
            logits = _check_logits(who, model.forward(xb), len(xb))
            _check_classes(who, yb, logits.shape[1])
            onehot = np.zeros_like(logits)
            onehot[np.arange(len(yb)), yb] = 1
            dx = model.backward(onehot)
            np.abs(dx).max(axis=1, out=out[s:s + batch_size])
    return out


# ---- fooling images ----------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class FoolingResult:
    """A fooling image and how it was made.

    Attributes
    ----------
    image : ndarray, same shape as the starting image, the model's dtype.
    start : the starting image (a copy, the model's dtype).
    target : the class the image was pushed towards.
    original_class : the model's prediction for ``start``.
    predicted : the model's prediction for ``image`` (``target`` on success).
    probability : softmax probability of ``predicted`` for ``image``.
    iterations : gradient steps taken (0 when ``start`` was already classified as ``target``).
    l2, linf : size of the change ``image - start`` (Euclidean norm, largest absolute entry),
        in the units of the normalised input.
    """

    image: np.ndarray
    start: np.ndarray
    target: int
    original_class: int
    predicted: int
    probability: float
    iterations: int
    l2: float
    linf: float

    @property
    def success(self) -> bool:
        return self.predicted == self.target

    def __repr__(self) -> str:
        return (f"FoolingResult(target={self.target}, original_class={self.original_class}, "
                f"predicted={self.predicted} (p={self.probability:.3f}), iterations="
                f"{self.iterations}, l2={self.l2:.4g}, linf={self.linf:.4g})")


class FoolingFailed(RuntimeError):
    """``fooling_image`` did not reach the target class; ``result`` holds the last image."""

    def __init__(self, message: str, result: FoolingResult):
        super().__init__(message)
        self.result = result


def fooling_image(model: Module, x: np.ndarray, target: int, *, step_size: float = 1.0,
                  max_iter: int = 100, objective: str = "score") -> FoolingResult:
    """Change one image until ``model`` classifies it as ``target``.

    Gradient ascent with steps of fixed length (the CS231n fooling image):
    ``x <- x + step_size * g / ||g||_2`` where ``g = d objective / d x``, stopping as soon as
    the prediction is ``target``. Start from a data-set image or from noise (e.g.
    ``rng.standard_normal(x_shape)`` for normalised inputs).

    Parameters
    ----------
    model : a classifier mapping (N, C, H, W) images to (N, K) logits.
    x : ndarray, shape (C, H, W) or (1, C, H, W), float: the starting image (not modified).
    target : class index in [0, K).
    step_size : L2 length of each step, in normalised input units.
    max_iter : the most gradient steps to take.
    objective : "score" ascends the target's logit (CS231n); "log_prob" its log-softmax, which
        also pushes the other classes down. On a ReLU network raising one logit can raise a
        rival faster; "log_prob" then still succeeds (measured on a half-trained ResNet-8 on the
        MNIST subset: 30 of 30 images against 19 of 30 for "score").

    Returns
    -------
    FoolingResult (``image`` has the shape of ``x``).

    Raises
    ------
    FoolingFailed (a RuntimeError)
        when the prediction is still not ``target`` after ``max_iter`` steps, or the gradient
        vanishes; its ``result`` holds the last image.
    """
    who = "fooling_image"
    _check_model(who, model)
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(f"{who}: expected x to be a float numpy.ndarray image (C, H, W), got "
                        + (f"dtype {x.dtype}" if isinstance(x, np.ndarray)
                           else type(x).__name__))
    if not (x.ndim == 3 or (x.ndim == 4 and x.shape[0] == 1)):
        raise ValueError(f"{who}: expected one image of shape (C, H, W) or (1, C, H, W), got "
                         f"shape {x.shape} (call it once per image)")
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"{who}: expected target to be an int class index, got {target!r}")
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real) or \
            not (0 < step_size < math.inf):
        raise ValueError(f"{who}: expected step_size to be a positive number, got {step_size!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 0:
        raise ValueError(f"{who}: expected max_iter to be a non-negative int, got {max_iter!r}")
    if objective not in ("score", "log_prob"):
        raise ValueError(f"{who}: expected objective 'score' or 'log_prob', got {objective!r}")
    target = int(target)
    start = np.array(x.reshape((1,) + x.shape[-3:]), dtype=model.dtype, order="C", copy=True)
    img = start.copy()

    def result(logits, it):
        p = _softmax(logits)[0]
        pred = int(np.argmax(p))
        d = (img - start).astype(np.float64)
        return FoolingResult(img.reshape(x.shape).copy(), start.reshape(x.shape).copy(), target,
                             first, pred, float(p[pred]), it, float(np.sqrt(np.sum(d * d))),
                             float(np.max(np.abs(d))))

    with _inspecting(model):
        it = 0
        while True:
            logits = _check_logits(who, model.forward(img), 1)
            if it == 0:
                _check_classes(who, np.array([target]), logits.shape[1], "target")
                first = int(np.argmax(logits[0]))
            if int(np.argmax(logits[0])) == target:
                return result(logits, it)
            if it == max_iter:
                break
            dlogits = np.zeros_like(logits)
            dlogits[0, target] = 1
            if objective == "log_prob":  # d log p_t / d logits = onehot(t) - softmax
                dlogits -= _softmax(logits).astype(logits.dtype)
            g = model.backward(dlogits)
            norm = float(np.sqrt(np.sum(g.astype(np.float64) ** 2)))
            if not (0 < norm < math.inf):
                r = result(logits, it)
                raise FoolingFailed(f"{who}: the gradient of the class-{target} score is "
                                    f"{norm} after {it} steps (the prediction is "
                                    f"{r.predicted}); start from another image", r)
            img += (step_size / norm) * g
            it += 1
    r = result(logits, max_iter)
    raise FoolingFailed(
        f"{who}: the prediction is still class {r.predicted} (p={r.probability:.3f}), not the "
        f"target {target}, after max_iter={max_iter} steps of step_size={step_size:g} (change "
        f"so far: L2 {r.l2:.3g}, Linf {r.linf:.3g}); raise max_iter or step_size", r)


# ---- worst errors ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Misclassified:
    """One wrong prediction: ``index`` into the images, the true ``label`` and the probability
    the model gave it, the first guess ``pred`` (wrong) with ``prob``, and the second guess."""

    index: int
    label: int
    label_prob: float
    pred: int
    prob: float
    second: int
    second_prob: float


def misclassified(model: Module, x: np.ndarray, y: np.ndarray, k: int = 16, *,
                  batch_size: int = 256) -> list[Misclassified]:
    """The ``k`` most confident mistakes: wrong predictions sorted by the probability of the
    (wrong) first guess, highest first (ties by index).

    Parameters
    ----------
    model : a classifier mapping (N, C, H, W) images to (N, K) logits, with K >= 2.
    x : ndarray, shape (N, C, H, W), float; y : ndarray of int, shape (N,), true classes.
    k : how many to return (fewer when the model makes fewer mistakes).
    batch_size : images per forward pass.

    Returns
    -------
    list of Misclassified (``dataclasses.asdict`` turns one into a dict).
    """
    who = "misclassified"
    _check_model(who, model)
    x = _check_images(who, x)
    y = _check_labels(who, y, len(x), what="y")
    k = positive_int(who, "k", k)
    batch_size = positive_int(who, "batch_size", batch_size)
    probs = []
    with _inspecting(model):
        for s in range(0, len(x), batch_size):
            xb = np.ascontiguousarray(x[s:s + batch_size], dtype=model.dtype)
            probs.append(_softmax(_check_logits(who, model.forward(xb), len(xb))))
    p = np.concatenate(probs)
    if p.shape[1] < 2:
        raise ValueError(f"{who}: expected a model with at least 2 classes, got logits of shape "
                         f"{p.shape}")
    _check_classes(who, y, p.shape[1], "y")
    order = np.argsort(-p, axis=1, kind="stable")
    first, second = order[:, 0], order[:, 1]
    wrong = np.flatnonzero(first != y)
    top = p[wrong, first[wrong]]
    pick = wrong[np.lexsort((wrong, -top))][:k]
    return [Misclassified(int(i), int(y[i]), float(p[i, y[i]]), int(first[i]),
                          float(p[i, first[i]]), int(second[i]), float(p[i, second[i]]))
            for i in pick]
