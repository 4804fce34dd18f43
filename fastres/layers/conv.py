"""2-D convolution layer (NCHW, PyTorch semantics: cross-correlation, zero padding, groups)."""

from __future__ import annotations

import numbers

import numpy as np

import fastres.functional as F
from fastres._validate import int_pair as pair  # same checks as the ops
from fastres.layers.base import Module, Parameter, init_rng

__all__ = ["Conv2D", "conv_output_size", "pair"]


def conv_output_size(layer, shape, kernel, stride, padding) -> tuple[int, int]:
    """(H_out, W_out) of a window op on a (C, H, W) input; ValueError when not positive."""
    H, W = shape[-2:]
    H_out = (H + 2 * padding[0] - kernel[0]) // stride[0] + 1
    W_out = (W + 2 * padding[1] - kernel[1]) // stride[1] + 1
    if H_out < 1 or W_out < 1:
        raise ValueError(f"{layer!r}: kernel {kernel} with padding {padding} does not fit the "
                         f"input of shape {tuple(shape)}")
    return H_out, W_out


def _positive_int(layer: str, name: str, v) -> int:
    if not isinstance(v, numbers.Integral) or isinstance(v, bool):
        raise TypeError(f"{layer}: expected {name} to be an int, got {v!r}")
    if v < 1:
        raise ValueError(f"{layer}: expected {name} >= 1, got {v}")
    return int(v)


class Conv2D(Module):
    """2-D convolution: ``w`` of shape (out_channels, in_channels/groups, KH, KW), optional bias.

    ``reset_parameters`` uses He (Kaiming) normal init in fan-out mode, ``std = sqrt(2 / (C_out *
    KH * KW))``, as torchvision's ResNets do for convolutions feeding ReLU; the bias starts at 0.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, *, stride=1, padding=0,
                 groups: int = 1, bias: bool = True, dtype=np.float32,
                 rng: np.random.Generator | None = None):
        super().__init__(dtype=dtype)
        who = "Conv2D"
        self.in_channels = _positive_int(who, "in_channels", in_channels)
        self.out_channels = _positive_int(who, "out_channels", out_channels)
        self.kernel_size = pair(who, "kernel_size", kernel_size, minimum=1)
        self.stride = pair(who, "stride", stride, minimum=1)
        self.padding = pair(who, "padding", padding, minimum=0)
        self.groups = _positive_int(who, "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Conv2D: expected groups to divide in_channels and out_channels, got "
                             f"groups={groups}, in_channels={in_channels}, "
                             f"out_channels={out_channels}")
        kh, kw = self.kernel_size
        self.weight = Parameter(np.zeros((out_channels, in_channels // groups, kh, kw), self.dtype))
        self.bias = Parameter(np.zeros(out_channels, self.dtype)) if bias else None
        self._cache = None
        rng = init_rng(rng)
        if rng is not None:
            self.reset_parameters(rng)

    def reset_parameters(self, rng: np.random.Generator) -> None:
        kh, kw = self.kernel_size
        std = np.sqrt(2.0 / (self.out_channels * kh * kw))
        self.weight.data[...] = rng.standard_normal(self.weight.shape) * std
        if self.bias is not None:
            self.bias.data[...] = 0

    def forward(self, x, *, residual=None):
        """``residual`` (shaped like the output): added as the output is stored (the fused
        ``conv -> add`` of ``fastres.layers.fused.ConvAdd``); the cache is the conv's alone."""
        self._check_input(x, ndim=4, channels=self.in_channels, what=" (N, C, H, W)")
        b = None if self.bias is None else self.bias.data
        out, self._cache = F.conv2d_forward(x, self.weight.data, b, stride=self.stride,
                                            padding=self.padding, groups=self.groups,
                                            residual=residual)
        return out

    def backward(self, dy, *, relu_input: bool = False, dx_add=None, input_grad: bool = True):
        """``relu_input``, ``dx_add``: see ``conv2d_backward`` (the containers ask for them,
        see ``fastres.layers.base``); ``input_grad=False``: only the parameters' gradients,
        returns None (a network's first layer: its input needs none)."""
        self._need_cache(self._cache)
        dx, dw, db = F.conv2d_backward(dy, self._cache, relu_input=relu_input, dx_add=dx_add,
                                       input_grad=input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def output_shape(self, *shapes):
        s = shapes[0]
        if len(s) != 3 or s[0] != self.in_channels:
            raise ValueError(f"{self!r}: expected input shape ({self.in_channels}, H, W), got {s}")
        return (self.out_channels, *conv_output_size(self, s, self.kernel_size, self.stride,
                                                     self.padding))

    def macs(self, *shapes):
        _, H_out, W_out = self.output_shape(*shapes)
        kh, kw = self.kernel_size
        return self.out_channels * H_out * W_out * (self.in_channels // self.groups) * kh * kw

    def extra_repr(self) -> str:
        k = self.kernel_size
        s = [f"{self.in_channels}, {self.out_channels}, kernel_size={k[0] if k[0] == k[1] else k}"]
        for name, default in (("stride", (1, 1)), ("padding", (0, 0))):
            v = getattr(self, name)
            if v != default:
                s.append(f"{name}={v[0] if v[0] == v[1] else v}")
        if self.groups != 1:
            s.append(f"groups={self.groups}")
        if self.bias is None:
            s.append("bias=False")
        return ", ".join(s)
