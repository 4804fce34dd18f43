"""Stateless ops on NCHW arrays, validated in Python and run by the compiled kernels.

Each ``*_forward`` returns ``(out, cache)``; each ``*_backward(dout, cache)`` returns the gradients
of the forward's array inputs in their order. Names and signatures match ``fastres.reference``.
Every op also takes ``n_threads=`` (default: ``fastres.get_num_threads()``).
"""

from fastres.functional.activation import *  # noqa: F403
from fastres.functional.batchnorm import *  # noqa: F403
from fastres.functional.conv import *  # noqa: F403
from fastres.functional.linear import *  # noqa: F403
from fastres.functional.loss import *  # noqa: F403
from fastres.functional.pool import *  # noqa: F403
from fastres.functional import activation, batchnorm, conv, linear, loss, pool

__all__ = [
    *activation.__all__, *batchnorm.__all__, *conv.__all__,
    *linear.__all__, *loss.__all__, *pool.__all__,
]
