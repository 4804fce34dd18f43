"""Plain-NumPy reference ops: loop-clear, correct in float64; ground truth for tests and the
baseline for benchmarks.

Each ``*_forward`` returns ``(out, cache)``; each ``*_backward(dout, cache)`` returns the gradients
of the forward's array inputs in their order. Names and signatures match ``fastres.functional``,
and so do the checks of their arguments (``fastres._validate``): bad input gets the same
``ValueError`` / ``TypeError`` from either tier.
"""

from fastres.reference.activation import *  # noqa: F403
from fastres.reference.batchnorm import *  # noqa: F403
from fastres.reference.conv import *  # noqa: F403
from fastres.reference.linear import *  # noqa: F403
from fastres.reference.loss import *  # noqa: F403
from fastres.reference.pool import *  # noqa: F403
from fastres.reference import activation, batchnorm, conv, linear, loss, pool

__all__ = [
    *activation.__all__, *batchnorm.__all__, *conv.__all__,
    *linear.__all__, *loss.__all__, *pool.__all__,
]
