"""2-D convolution (fast path): cross-correlation as in PyTorch, zero padding, groups."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fastres import arena
from fastres._config import resolve_threads, streaming
from fastres._kernels import _conv as _k
from fastres.functional.activation import ReluCache, add_forward, relu_backward
from fastres.functional.pool import Subsample2dCache, subsample2d_backward, subsample2d_forward
from fastres._validate import conv2d_args, float_array, grad_like, same_dtype, shape_is

__all__ = ["conv2d_forward", "conv2d_backward"]

_INT_MAX = 2**31 - 1
# The weight gradient sums over the batch in this many fixed blocks (at most), whatever the
# thread count, so it is bit-identical at any number of threads; 16 balances 1, 2, 4, 8 threads.
_MAX_BLOCKS = 16
_PARTIAL_BUDGET = 1 << 24  # elements of per-block weight-gradient partials (64 MiB in float32)


@dataclass(frozen=True)
class ConvCache:
    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    out_shape: tuple[int, int, int, int]
    x_in: np.ndarray  # the input as given: x, or what x was subsampled from
    # A strided 1x1 convolution without padding runs as a stride-1 one on the subsampled input
    # x = x_in[:, :, ::sh, ::sw] (this subsampling's cache); dx is then scattered back.
    sub: Subsample2dCache | None = None


# The im2col + GEMM path multiplies this many output pixels at once (several images of a small
# feature map side by side), so BLAS packs the weights once per wide product, not per 16 pixels;
# but a batch is cut into at least _MIN_PRODUCTS products: threads share out products, and one
# product ran on one thread (256->512 @7x7 stride 2, batch 16: forward 7.8 -> 4.0 ms).
_GEMM_COLS = 256
_MIN_PRODUCTS = 2


def _images_per_product(N: int, P: int) -> int:
    """Images side by side in one product: a function of the shapes only (the thread count
    never changes how the batch is cut)."""
    nb = max(1, min(N, _GEMM_COLS // max(P, 1), -(-N // _MIN_PRODUCTS)))
    # As many products, rounded up to an even count (two or four threads share them evenly: 7
    # products of 5 images, 128->256 @14x14 stride 2, batch 32, forward 8.9 ms, 8 of 4 7.0
    # ms), then evened out (16 images: 4 x 4, not 5+5+5+1).
    products = -(-N // nb)
    products += products % 2 if products < N else 0
    return -(-N // products)


# A weight-gradient batch block holds at least this many output pixels (images x P) when the
# batch allows two blocks: each block's partial costs a pass over the weight's size (14 blocks
# of one or two 4x4 maps made 256->512 @7x7 stride 2, batch 16, wgrad 10.3 ms, 2 blocks 4.9).
_MIN_BLOCK_PIXELS = 128


def _n_blocks(N: int, weight_size: int, P: int, per: int = 1) -> int:
    """Fixed batch blocks of the weight gradient (shapes only, never the thread count), of at
    least per images (the batch-lane kernel's L: a block of fewer leaves lanes idle; 16 blocks
    of one image made 256->256 @7x7, batch 16, 47 ms, 2 blocks of 8 5.7 ms)."""
    return max(1, min(N, _MAX_BLOCKS, _PARTIAL_BUDGET // max(weight_size, 1),
                      max(2, N * P // _MIN_BLOCK_PIXELS), -(-N // per)))


# ---- the direct kernels (no im2col): geometry tables and weight packing ----------------------
# A pixel vector is 32 bytes of one output row (8 float32 or 4 float64), and weights are tiled by
# 4 output channels, so the direct path needs W_out % lanes == 0 and channels % 4 == 0; stride-1
# maps with narrower rows put images in the lanes instead (the batch-lane path); other shapes
# take the im2col + BLAS path. Strided convolutions read a polyphase copy of the input
# (fr_direct_impl.h). Measured on the ResNet-20 shapes: see benchmarks/bench_ops.py.
def _lanes(dtype: np.dtype) -> int:
    return 32 // dtype.itemsize


def _phase_dims(H: int, W: int, ph: int, pw: int, sh: int, sw: int) -> tuple[int, int]:
    return -(-(H + 2 * ph) // sh), -(-(W + 2 * pw) // sw)


def _phase_size(Cg: int, H: int, W: int, ph: int, pw: int, sh: int, sw: int) -> int:
    """Elements of the polyphase copy from which the im2col kernels unfold a strided
    convolution's image (channel group); 0 at stride 1."""
    if (sh, sw) == (1, 1):
        return 0
    Hq, Wq = _phase_dims(H, W, ph, pw, sh, sw)
    return Cg * sh * sw * Hq * Wq


@lru_cache(maxsize=512)
def _direct_plan(Cg: int, H: int, W: int, KH: int, KW: int, ph: int, pw: int, sh: int, sw: int,
                 H_out: int, W_out: int, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(off, vin, vout) int32 tables of fr_direct_impl.h."""
    Hq, Wq = _phase_dims(H, W, ph, pw, sh, sw)
    c, i, j = np.meshgrid(np.arange(Cg), np.arange(KH), np.arange(KW), indexing="ij")
    off = (((c * sh + i % sh) * sw + j % sw) * Hq + i // sh) * Wq + j // sw
    v = np.arange(0, H_out * W_out, lanes)
    vin = (v // W_out) * Wq + v % W_out
    off, vin, vout = (np.ascontiguousarray(a.ravel(), dtype=np.int32) for a in (off, vin, v))
    for a in (off, vin, vout):
        a.flags.writeable = False
    return off, vin, vout


@lru_cache(maxsize=512)
def _lanes_plan(Cg: int, H: int, W: int, KH: int, KW: int, ph: int, pw: int, H_out: int,
                W_out: int, lanes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(off, vin, vout) for the batch-lane layout (C, H + 2ph, W + 2pw, lanes), stride 1: the
    stride-1 direct tables with one pixel per vector, in units of `lanes` elements."""
    tables = tuple(a * lanes for a in _direct_plan(Cg, H, W, KH, KW, ph, pw, 1, 1, H_out, W_out, 1))
    for a in tables:
        a.flags.writeable = False
    return tables


def _pack4(wg: np.ndarray) -> np.ndarray:
    """(G, Fg, K) weights -> (G, Fg/4 * K * 4): 4 output channels interleaved per k."""
    G, Fg, K = wg.shape
    return np.ascontiguousarray(wg.reshape(G, Fg // 4, 4, K).transpose(0, 1, 3, 2)).reshape(G, -1)


# 3x3 stride-1 convolutions whose output rows are whole pairs of half vectors of 2x2 tiles run
# as Winograd F(2x2, 3x3) (fr_winograd_impl.h): 2.25x fewer multiplications. Its transforms
# cost in proportion to C_in + C_out and the products to C_in * C_out, so it pays more with more
# channels: forward / input+weight gradient measured 1.2x / 1.07x faster than the direct kernels
# at 16@32x32, 1.7x / 1.55x at 32@16x16, 1.9x / 1.55x at 64@8x8, 2x at 128@16x16 (2 threads,
# batch 128, in-process A/B); with 8 channels the transforms would cost more than they save.
_WINOGRAD = True
_WINO_MIN_CHANNELS = 16
# The weight gradient sums the transforms of several images of a batch block at once, enough
# for about this many tiles: an 8x8 map has only 16, and image by image the register tiles'
# horizontal sums and the partials' additions cost more than Winograd saves (measured 1.4x
# slower than 8 images at once at 64@8x8); more images than needed stream more data per
# register tile through L2 (16@32x32: 1 image 12% faster than 8). At most this many elements
# of transforms per thread (16 MB of float32: a batch-lane group of 4x4 maps with 512 channels
# takes 2 MB, and 8 of them made the weight gradient 2x faster than 2; 256 channels 1.2x):
_WINO_DW_TILES = 256
_WINO_DW_GROUP_ELEMS = 1 << 22
# Where a small batch cannot fill blocks of that many tiles and its transforms take at most
# this many elements (64 MB of float32), they are all made first and the threads split the
# sums, each over every image: no block partials, and full-depth register tiles (512->512
# @4x4, batch 16: two blocks of one lane group each summed 32 tiles between horizontal sums and
# wrote 4M-element partials; 2 threads 8.8-10.7 -> 6.1-6.9 ms; 256->256 @8x8, batch 16,
# 4.5-5.4 -> 3.8-4.2 ms; minima of 9, five alternated rounds). Batch 128 at 4x4 (two blocks of
# 256 tiles) measured the same either way and keeps its blocks.
_WINO_DW_SHARED_ELEMS = 1 << 24


def _wino_shape_ok(KH: int, KW: int, stride: tuple[int, int], groups: int, C: int, F: int,
                   H_out: int, W_out: int) -> bool:
    """A 3x3 stride-1 convolution Winograd F(2x2, 3x3) can run, on one layout or the other."""
    return (_WINOGRAD and (KH, KW) == (3, 3) and stride == (1, 1) and groups == 1
            and min(C, F) >= _WINO_MIN_CHANNELS and F % 4 == 0)


def _wino_ok(KH: int, KW: int, stride: tuple[int, int], groups: int, C: int, F: int,
             H_out: int, W_out: int, dtype) -> bool:
    """Winograd image by image: even planes whose rows are whole pairs of half vectors of
    tiles."""
    half = _lanes(dtype) // 2
    return (_wino_shape_ok(KH, KW, stride, groups, C, F, H_out, W_out)
            and H_out % 2 == 0 and W_out % 2 == 0
            and (W_out // 2) % half == 0 and (H_out * W_out // 4) % (2 * half) == 0)


def _wino_lanes_ok(KH: int, KW: int, stride: tuple[int, int], groups: int, C: int, F: int,
                   H_out: int, W_out: int, dtype) -> bool:
    """Winograd on the batch-lane layout: the maps _wino_ok refuses whose rows are narrower
    than a vector (4x4, 6x6: the MiniModel's last stage; 7x7, tiled as 8x8 and cropped: the
    last stage of ResNet-18..152 at 224x224) and would take the batch-lane path."""
    return (_wino_shape_ok(KH, KW, stride, groups, C, F, H_out, W_out)
            and _lanes_ok(stride, W_out, F, dtype))


# Float32 3x3 convolutions take Winograd F(4x4, 3x3) (forward, input and weight gradients):
# 2.25 multiplications per output and channel pair instead of 4, at some accuracy
# (fr_winograd_impl.h: about 5e-6 of the largest output against 3e-7). Image by image on maps
# whose rows hold whole vectors of 4x4 tiles (W_out a multiple of 16: CIFAR's 32x32, 16x16); on
# the batch-lane layout where its tiles, counting the padding up to multiples of 4, cost at most
# 3/4 of F(2x2)'s multiplications (7x7, 14x14, 28x28, 4x4; not 6x6, which F(2x2) tiles exactly).
# Its weights have 36 elements per channel pair instead of 16, and transforming them (and the
# weight gradient's sums) costs about as much as 1000 multiplications per pair more: so only
# where the batch saves at least _WINO4_MIN_SAVED per pair (batch 32: 512@4x4 saves 896 and
# ran 1.3x slower by F(4x4), 256@7x7 saves 3584 and ran 1.3x faster).
_WINOGRAD4 = True
_WINO4_MIN_SAVED = 2048


def _up(n: int, m: int) -> int:
    """n rounded up to a multiple of m: the batch-lane Winograd F(m x m) tiles a plane so."""
    return -(-n // m) * m


def _wino_m(N: int, H_out: int, W_out: int, dtype, lanes: bool) -> int:
    """The output tile of the Winograd variant for a batch of N such maps: 4 (F(4x4)) or 2."""
    if not (_WINOGRAD4 and dtype == np.float32):
        return 2
    p2, p4 = _up(H_out, 2) * _up(W_out, 2), _up(H_out, 4) * _up(W_out, 4)  # tiled pixels
    if lanes:  # tiles, with their padding, at most 3/4 of F(2x2)'s multiplications
        fits = 9 * p4 <= 12 * p2
    else:  # rows of whole vectors of 4x4 tiles
        fits = H_out % 4 == 0 and W_out % 16 == 0 and (H_out * W_out // 16) % 8 == 0
    return 4 if fits and N * (4 * p2 - 2.25 * p4) >= _WINO4_MIN_SAVED else 2


def _wino_conv(x: np.ndarray, w: np.ndarray, b, out: np.ndarray, padding: tuple[int, int],
               n: int, residual=None, relu: bool = False, gate=None, flip: bool = False,
               lanes: bool = False, weight_cache: dict | None = None) -> None:
    """out as by _direct_conv for a 3x3 stride-1 convolution with weights w (C_out, C_in, 3, 3),
    or with flip those of the input gradient of a convolution with weights w (C_in, C_out, 3,
    3); with lanes on the batch-lane layout, whose epilogue has no gate. weight_cache: see
    conv2d_forward (the transformed weights, per Winograd variant)."""
    C, F, Ho, Wo = x.shape[1], *out.shape[1:]
    m = _wino_m(x.shape[0], Ho, Wo, x.dtype, lanes)
    E = (m + 2) ** 2
    key = ("winograd", m, flip)
    upk = None if weight_cache is None else weight_cache.get(key)
    if upk is None:
        upk = (arena.empty if weight_cache is None else np.empty)((E, F * C), dtype=x.dtype)
        _k.winograd_weights(w, flip, upk, n)
        if weight_cache is not None:
            weight_cache[key] = upk
    if lanes:
        assert gate is None
        L, He, We = _lanes(x.dtype), _up(Ho, m), _up(Wo, m)
        size = ((C * (He + 2) * (We + 2) + F * He * We) * L
                + E * ((C + F) * He * We // m**2 * L + 2 * _k.winograd_gap))
        _k.winograd_lanes_forward(x, upk, b, residual, relu, out,
                                  arena.empty((n, size), dtype=x.dtype), *padding, n)
    else:
        size = (Ho + 2) * (Wo + 2) + E * ((C + F) * Ho * Wo // m**2 + 2 * _k.winograd_gap)
        _k.winograd_forward(x, upk, b, residual, relu, gate, out,
                            arena.empty((n, size), dtype=x.dtype), *padding, n)


def _wino_weight_grad(x: np.ndarray, dout: np.ndarray, dw: np.ndarray, db, db_part,
                      padding: tuple[int, int], blocks: int, n: int, lanes: bool = False) -> None:
    """dw (F, C, 3, 3) [and db] of a 3x3 stride-1 convolution by Winograd F(2x2, 3x3) or F(4x4,
    3x3) (_wino_m), with lanes on the batch-lane layout (lane groups of L images in place of
    images)."""
    C, F, Ho, Wo = x.shape[1], *dout.shape[1:]
    per = _lanes(x.dtype) if lanes else 1
    m = _wino_m(x.shape[0], Ho, Wo, x.dtype, lanes)
    E = (m + 2) ** 2
    if lanes:
        Ho, Wo = _up(Ho, m), _up(Wo, m)
    items = -(-x.shape[0] // per)
    NT = Ho * Wo // m**2 * per
    per_item = E * ((C + F) * NT + 2 * _k.winograd_gap)
    # each thread's padded image (lanes: and its dout)
    pads = (C * (Ho + 2) * (Wo + 2) + F * Ho * Wo) * per if lanes else (Ho + 2) * (Wo + 2)
    dwt = arena.empty((E, F * C), x.dtype)
    # at least _WINO_DW_TILES tiles per block (a lane group of 4x4 maps has only 32), but two
    # blocks where there are two items (threads share out blocks: one would idle the second)
    blocks = max(min(2, items, blocks), min(blocks, items // -(-_WINO_DW_TILES // NT)))
    if (items // blocks) * NT < _WINO_DW_TILES and items * per_item <= _WINO_DW_SHARED_ELEMS:
        # blocks too short: all the batch's transforms at once, the sums split among threads
        _k.winograd_weight_grad(x, dout, dw, db, dwt, None, db_part[:1],
                                arena.empty((n, pads), x.dtype),
                                arena.empty(items * per_item, x.dtype), *padding, 1, lanes, n)
        return
    group = max(1, min(-(-_WINO_DW_TILES // NT), -(-items // blocks),
                       _WINO_DW_GROUP_ELEMS // per_item))
    _k.winograd_weight_grad(x, dout, dw, db, dwt, arena.empty((blocks, E * F * C), x.dtype),
                            db_part, arena.empty((n, pads + group * per_item), x.dtype), None,
                            *padding, group, lanes, n)


def _direct_conv(x: np.ndarray, wg: np.ndarray, b, out: np.ndarray, KH: int, KW: int,
                 padding: tuple[int, int], stride: tuple[int, int], groups: int, n: int,
                 residual=None, relu: bool = False, gate=None) -> None:
    """out = [relu](conv of x with grouped weights wg (G, Fg, Cg*KH*KW) [+ b] [+ residual])
    [* (gate > 0)], by the direct kernel."""
    N, C, H, W = x.shape
    (ph, pw), (sh, sw) = padding, stride
    off, vin, vout = _direct_plan(C // groups, H, W, KH, KW, ph, pw, sh, sw, out.shape[2],
                                  out.shape[3], _lanes(x.dtype))
    Hq, Wq = _phase_dims(H, W, ph, pw, sh, sw)
    scratch = arena.empty((n, C * sh * sw * Hq * Wq), dtype=x.dtype)
    _k.direct_forward(x, _pack4(wg), b, residual, relu, gate, out, off, vin, vout, scratch, ph,
                      pw, sh, sw, groups, n)


def _lanes_conv(x: np.ndarray, wg: np.ndarray, b, out: np.ndarray, KH: int, KW: int,
                padding: tuple[int, int], groups: int, n: int, residual=None,
                relu: bool = False) -> None:
    """out = [relu](conv of x with grouped weights wg [+ b] [+ residual]), stride 1, on the
    batch-lane layout."""
    N, C, H, W = x.shape
    ph, pw = padding
    L = _lanes(x.dtype)
    off, vin, vout = _lanes_plan(C // groups, H, W, KH, KW, ph, pw, out.shape[2], out.shape[3], L)
    cols = (C * (H + 2 * ph) * (W + 2 * pw) + out.shape[1] * out.shape[2] * out.shape[3]) * L
    _k.lanes_forward(x, _pack4(wg), b, residual, relu, out, off, vin, vout,
                     arena.empty((n, cols), x.dtype), ph, pw, groups, n)


# The input gradient of a 3x3 stride-2 convolution with padding 1 (ResNet's downsampling) runs
# as four stride-1 correlations of dout, one per output phase, by the direct kernel (fewer
# passes over memory than im2col + BLAS, and the ReLU mask applied as the phases interleave).
_S2_DIRECT_DX = True


def _s2_dx_ok(KH: int, KW: int, stride: tuple[int, int], padding: tuple[int, int], groups: int,
              C: int, H: int, W: int, dtype) -> bool:
    return (_S2_DIRECT_DX and (KH, KW) == (3, 3) and stride == (2, 2) and padding == (1, 1)
            and groups == 1 and C % 4 == 0 and H % 2 == 0 and W % (2 * _lanes(dtype)) == 0)


@lru_cache(maxsize=64)
def _s2_dx_plan(F: int, Ho: int, Wo: int, lanes: int):
    """(off, kstart, vin, vout, taps) for direct_input_grad_s2: phase p = 2a + b takes the taps
    (i, j) with i = a + 1 (mod 2), j = b + 1 (mod 2), each reading dout at (Y + (a + 1 - i)/2,
    X + (b + 1 - j)/2) of the dout padded by 1."""
    Hp, Wp = Ho + 2, Wo + 2
    offs, kstart, taps = [], [0], []
    for a in range(2):
        for b in range(2):
            ti = [i for i in range(3) if (a + 1 - i) % 2 == 0]
            tj = [j for j in range(3) if (b + 1 - j) % 2 == 0]
            f, i, j = np.meshgrid(np.arange(F), ti, tj, indexing="ij")
            offs.append((f * Hp * Wp + (a + 1 - i) // 2 * Wp + (b + 1 - j) // 2).ravel())
            kstart.append(kstart[-1] + offs[-1].size)
            taps.append((ti, tj))
    v = np.arange(0, Ho * Wo, lanes)
    vin = (v // Wo + 1) * Wp + v % Wo + 1
    tables = tuple(np.ascontiguousarray(t, dtype=np.int32)
                   for t in (np.concatenate(offs), kstart, vin, v))
    for t in tables:
        t.flags.writeable = False
    return (*tables, tuple(taps))


def _s2_input_grad(dout: np.ndarray, w: np.ndarray, dx: np.ndarray, res, gate, n: int) -> None:
    """dx of a 3x3 stride-2 padding-1 convolution with weights w (F, C, 3, 3) by the direct
    kernel (see _s2_dx_plan) [+ res], 0 where gate (x) is not > 0 when gate is given."""
    N, F, Ho, Wo = dout.shape
    C = dx.shape[1]
    off, kstart, vin, vout, taps = _s2_dx_plan(F, Ho, Wo, _lanes(dout.dtype))
    # phase weights (C, F * |taps|) in the order of off: w[f, c, i, j] over (f, i, j)
    wpk = np.concatenate([_pack4(w[:, :, ti][:, :, :, tj].transpose(1, 0, 2, 3)
                                 .reshape(1, C, -1)).ravel() for ti, tj in taps])
    scratch = arena.empty((n, F * (Ho + 2) * (Wo + 2) + 4 * C * Ho * Wo), dout.dtype)
    _k.direct_input_grad_s2(dout, wpk, off, kstart, vin, vout, res, gate, dx, scratch, n)


def _pointwise_strided_backward(dout, cache, input_grad, relu_input, dx_add, n):
    """conv2d_backward of a strided pointwise convolution (see _pointwise_strided): dx (+ dx_add,
    times x > 0 with relu_input) and the weight and bias gradients in one pass over dout."""
    x, w = cache.x, cache.w
    N, C, H, W = x.shape
    F = w.shape[0]
    P = dout.shape[2] * dout.shape[3]
    dx = arena.empty_like(x) if input_grad else None
    dw = arena.empty_like(w)
    db = np.empty(F, dtype=x.dtype) if cache.has_bias else None
    blocks = _n_blocks(N, w.size, P)
    lanes = _k.pointwise_lanes
    _k.pointwise_backward(
        x, dout, np.ascontiguousarray(w.reshape(F, C).T), dx_add,
        x if relu_input and input_grad else None, dx, dw.reshape(F, C), db,
        arena.empty((blocks, w.size), x.dtype), np.empty((blocks, F), x.dtype),
        arena.empty((n, 2 * C * P + F * C * lanes + W), x.dtype), *cache.stride,
        input_grad and streaming(x, dx_add, dx), n)
    return dx, dw, db


def _gemm_backward(x, w, dout, dx, dw, db, dw_part, db_part, cache, blocks, n):
    """The im2col + GEMM backward (any of dx, dw, db may be None)."""
    N, F, H_out, W_out = dout.shape
    _, Cg, KH, KW = w.shape
    P, groups = H_out * W_out, cache.groups
    nb = min(_images_per_product(N, P), -(-N // blocks))
    qs = _phase_size(Cg, *x.shape[2:], *cache.padding, *cache.stride) if dw is not None else 0
    scratch = arena.empty((n, (2 * Cg * KH * KW + F // groups) * nb * P + qs), x.dtype)
    _k.conv2d_backward(x, w, dout, dx, dw, db, dw_part, db_part, scratch, *cache.stride,
                       *cache.padding, groups, nb, n)


def _direct_ok(width: int, channels: int, dtype) -> bool:
    return width % _lanes(dtype) == 0 and channels % 4 == 0


# Stride-1 maps whose rows are not whole vectors (4x4, 7x7) run the direct kernels with images
# in the vector lanes instead of im2col + GEMM (see fr_direct_impl.h).
_BATCH_LANES = True


# The weight gradient takes the batch-lane path also on maps of up to this many output pixels
# with whole-vector rows: its loads are then aligned, and it measured 15-25% faster than the
# per-image direct kernel at 16x16 and 8x8 (slower at 32x32, where the transposes cost more).
_LANES_DW_MAX_PIXELS = 256


# The input gradient of a convolution with a channel count the direct kernel cannot take (the
# stem's 3) runs on it with the channels padded to a multiple of 4 by zero weights and the extra
# ones dropped: 3->16 @32x32, batch 128, dx ~3.1 ms by im2col + BLAS (products of depth 16),
# ~1.6 ms so.
def _pad4(channels: int) -> int:
    return -(-channels // 4) * 4


def _lanes_ok(stride: tuple[int, int], width: int, channels: int, dtype) -> bool:
    return (_BATCH_LANES and stride == (1, 1) and width % _lanes(dtype) != 0
            and channels % 4 == 0)


# The backward of a pointwise (1x1, stride 1 once subsampled, no padding) convolution is two
# plain matrix products, which BLAS runs faster than the direct kernels: input + weight
# gradient measured 7-28% faster on bottleneck shapes (64->256 @16x16, 256->64, 32->128
# @32x32; 2 threads, batch 128) and 2.4x on the strided 1x1 shortcut 16->32 @32x32; and so is
# its forward on maps too narrow for the direct kernel (ResNet-50's at 7x7-28x28, batch 16:
# 1.6-2.2x faster than the batch-lane kernel).
_POINTWISE_GEMM = True

# A strided pointwise convolution (1x1, stride > 1, no padding, one group: ResNet's downsampling
# shortcut) with few channels runs on fastres' own kernels (fr_pointwise.h), which gather the
# strided pixels of each image in cache and scatter its input gradient into dx with the zeros,
# instead of subsampling the input, running the stride-1 product (BLAS or direct) and spreading
# dx out in a pass of its own. 2 threads, float32, forward / backward ms, new against old:
# batch 128, 16->32 @32x32 1.3 / 2.8 against 2.1 / 3.7, 32->64 @16x16 0.8 / 2.9 against
# 1.5 / 3.3; batch 32, 64->128 @56x56 8.0 / 18.3 against 10.1 / 19.0. With more channels BLAS's
# blocking wins (its products re-read the gathered image once per 4 output channels): 128->256
# @28x28 7.8 / 20.5 against 7.5 / 14.2, 256->512 @14x14 13 / 49 against 7 / 14.
_POINTWISE_STRIDED = True
_POINTWISE_STRIDED_MAX_WEIGHTS = 64 * 128  # C_in * C_out


def _pointwise_strided(KH: int, KW: int, stride: tuple[int, int], padding: tuple[int, int],
                       groups: int, C: int, F: int) -> bool:
    return (_POINTWISE_STRIDED and (KH, KW) == (1, 1) and padding == (0, 0)
            and stride != (1, 1) and groups == 1 and C * F <= _POINTWISE_STRIDED_MAX_WEIGHTS)


def _pointwise_gemm(KH: int, KW: int, stride: tuple[int, int], padding: tuple[int, int]) -> bool:
    return _POINTWISE_GEMM and (KH, KW, *stride, *padding) == (1, 1, 1, 1, 0, 0)


# The forward of a pointwise convolution also runs by BLAS on maps the direct kernel could take,
# except where it narrows the channels on a small map: 2 threads, float32, direct / BLAS ms,
# batch 128: the strided shortcut 16->32 @32x32 1.06 / 0.43, 16->64 @32x32 3.96 / 3.47,
# 32->128 @16x16 3.12 / 2.20, but 64->16 @32x32 4.03 / 4.97, 128->32 @16x16 3.02 / 3.43,
# 256->64 @8x8 2.28 / 2.45; batch 32 at 56x56 (ImageNet ResNet-50): 64->256 30.5 / 24.3,
# 256->64 41.4 / 29.8, 64->64 8.9 / 7.4.
_POINTWISE_DIRECT_MAX_PIXELS = 1024


def _pointwise_forward_gemm(KH: int, KW: int, stride: tuple[int, int], padding: tuple[int, int],
                            C: int, F: int, pixels: int) -> bool:
    return (_pointwise_gemm(KH, KW, stride, padding)
            and not (F < C and pixels <= _POINTWISE_DIRECT_MAX_PIXELS))


def _dw_path(stride: tuple[int, int], H_out: int, W_out: int, Fg: int, dtype) -> str:
    if _BATCH_LANES and stride == (1, 1) and Fg % 4 == 0 and (
            W_out % _lanes(dtype) or H_out * W_out <= _LANES_DW_MAX_PIXELS):
        return "lanes"
    return "direct" if _direct_ok(W_out, Fg, dtype) else "gemm"


def conv2d_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, *, stride=1,
                   padding=0, groups: int = 1, residual: np.ndarray | None = None,
                   relu: bool = False, weight_cache: dict | None = None,
                   n_threads: int | None = None):
    """2-D convolution (cross-correlation) with zero padding and channel groups.

    ``residual`` (shaped like the output) is added and ``relu`` then applies ``max(., 0)``, both
    as the output is stored (one pass over memory; the fused inference path uses them). The
    cache and ``conv2d_backward`` are those of the convolution alone.

    ``weight_cache`` (a dict, or None): where the weights' transforms (Winograd's) are kept and
    found again by later calls with the same dict, instead of being recomputed each call (for
    weights that stay fixed, as in inference: ResNet-18's 512x512 take ~5 ms each). The dict
    belongs to these weights: give a new or emptied one whenever w changes.

    Parameters
    ----------
    x : (N, C_in, H, W) float32 or float64
    w : (C_out, C_in/groups, KH, KW), same dtype
    b : (C_out,) or None
    stride, padding : int or (h, w) pair; stride >= 1, padding >= 0
    groups : C_in and C_out must both be divisible by it

    Returns
    -------
    out : (N, C_out, H_out, W_out), ``H_out = (H + 2*ph - KH) // sh + 1`` (likewise W_out)
    cache : for ``conv2d_backward``
    """
    op = "conv2d_forward"
    x, w, b, (sh, sw), (ph, pw), groups, (H_out, W_out) = conv2d_args(op, x, w, b, stride,
                                                                        padding, groups)
    dtype = x.dtype
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"{op}: expected relu to be a bool, got {relu!r}")
    if weight_cache is not None and not isinstance(weight_cache, dict):
        raise TypeError(f"{op}: expected weight_cache to be a dict or None, got "
                        f"{type(weight_cache).__name__}")
    if residual is not None:
        residual = float_array(op, "residual", residual, ndim=4, layout="(N, C_out, H_out, W_out)")
        same_dtype(op, x=x, residual=residual)
        shape_is(op, "residual", residual, (N, F, H_out, W_out))
    col = Cg * KH * KW * H_out * W_out
    padded = C * (H + 2 * ph + sh) * (W + 2 * pw + sw)  # the kernels' padded / polyphase copy
    if max(col * 2, N * C * H * W, N * F * H_out * W_out, padded) > _INT_MAX:
        raise ValueError(f"{op}: x {x.shape} with w {w.shape}, stride ({sh}, {sw}) and padding "
                         f"({ph}, {pw}) is too large for the kernels (an image's unfolded "
                         f"columns must stay below 2**30 elements, its padded copy below 2**31)")
    n = resolve_threads(n_threads, op)
    x_in, sub = x, None
    out = arena.empty((N, F, H_out, W_out), dtype=dtype)
    if _pointwise_strided(KH, KW, (sh, sw), (ph, pw), groups, C, F):
        _k.pointwise_forward(x, w.reshape(F, C), b, residual, bool(relu), out,
                             arena.empty((n, C * H_out * W_out), dtype), sh, sw, n)
        return out, ConvCache(x, w, b is not None, (sh, sw), (ph, pw), groups, out.shape, x,
                              None)
    if (KH, KW) == (1, 1) and (ph, pw) == (0, 0) and (sh, sw) != (1, 1):  # grouped, or wide
        x, sub = subsample2d_forward(x_in, stride=(sh, sw), n_threads=n)
        sh, sw = 1, 1
    if _wino_ok(KH, KW, (sh, sw), groups, C, F, H_out, W_out, dtype):
        _wino_conv(x, w, b, out, (ph, pw), n, residual, bool(relu), weight_cache=weight_cache)
    elif (_direct_ok(W_out, F // groups, dtype)
          and not _pointwise_forward_gemm(KH, KW, (sh, sw), (ph, pw), C, F, H_out * W_out)):
        _direct_conv(x, w.reshape(groups, F // groups, -1), b, out, KH, KW, (ph, pw), (sh, sw),
                     groups, n, residual, bool(relu))
    elif _wino_lanes_ok(KH, KW, (sh, sw), groups, C, F, H_out, W_out, dtype):
        _wino_conv(x, w, b, out, (ph, pw), n, residual, bool(relu), lanes=True,
                   weight_cache=weight_cache)
    elif (_lanes_ok((sh, sw), W_out, F // groups, dtype)
          and not _pointwise_gemm(KH, KW, (sh, sw), (ph, pw))):
        _lanes_conv(x, w.reshape(groups, F // groups, -1), b, out, KH, KW, (ph, pw), groups, n,
                    residual, bool(relu))
    else:
        nb = _images_per_product(N, H_out * W_out)
        scratch = arena.empty((n, (Cg * KH * KW + F // groups) * nb * H_out * W_out
                               + _phase_size(Cg, H, W, ph, pw, sh, sw)), dtype=dtype)
        _k.conv2d_forward(x, w, b, residual, bool(relu), out, scratch, sh, sw, ph, pw, groups,
                          nb, n)
    return out, ConvCache(x, w, b is not None, (sh, sw), (ph, pw), groups, out.shape, x_in, sub)


def conv2d_backward(dout: np.ndarray, cache: ConvCache, *, input_grad: bool = True,
                    relu_input: bool = False, dx_add: np.ndarray | None = None,
                    n_threads: int | None = None):
    """Gradients of ``conv2d_forward``.

    Returns ``(dx, dw, db)``: dx like x (None when ``input_grad=False``, e.g. for a network's
    first layer), dw like w, db (C_out,) or None when the forward had no bias.

    ``dx_add`` (like x): the gradient that reaches x by other paths (a residual block's
    shortcut); dx then comes back as the sum, added as the kernels store dx (which saves a
    separate addition its pass over memory).

    ``relu_input=True`` says x is the output of a ReLU whose other uses, if any, gave their
    gradients in ``dx_add``: dx then comes back multiplied by ``x > 0``, the gradient with
    respect to the ReLU's input (applied as the kernels store dx, which saves the ReLU backward
    its pass over memory); with ``input_grad=False`` there is no dx to apply it to.
    """
    op = "conv2d_backward"
    if not isinstance(relu_input, (bool, np.bool_)):
        raise TypeError(f"{op}: expected relu_input to be a bool, got {relu_input!r}")
    x, w = cache.x, cache.w
    dout = grad_like(op, dout, cache.out_shape, x.dtype, "(N, C_out, H_out, W_out)")
    if dx_add is not None:
        if not input_grad:
            raise ValueError(f"{op}: dx_add needs input_grad=True")
        dx_add = float_array(op, "dx_add", dx_add, ndim=4, layout="(N, C_in, H, W)")
        same_dtype(op, dout=dout, dx_add=dx_add)
        shape_is(op, "dx_add", dx_add, cache.x_in.shape)
    (sh, sw), (ph, pw) = cache.stride, cache.padding
    groups = cache.groups
    N, C, H, W = x.shape
    F, Cg, KH, KW = w.shape
    Fg, H_out, W_out = F // groups, dout.shape[2], dout.shape[3]
    n = resolve_threads(n_threads, op)
    if _pointwise_strided(KH, KW, (sh, sw), (ph, pw), groups, C, F):
        return _pointwise_strided_backward(dout, cache, input_grad, relu_input, dx_add, n)
    dx = arena.empty_like(x) if input_grad else None
    dw = arena.empty_like(w)
    db = np.empty(F, dtype=x.dtype) if cache.has_bias else None
    pointwise = _pointwise_gemm(KH, KW, (sh, sw), (ph, pw))
    if _wino_ok(KH, KW, (sh, sw), groups, C, F, H_out, W_out, x.dtype):
        dw_path = "winograd"
    elif _wino_lanes_ok(KH, KW, (sh, sw), groups, C, F, H_out, W_out, x.dtype):
        dw_path = "winograd lanes"
    else:
        dw_path = "gemm" if pointwise else _dw_path((sh, sw), H_out, W_out, Fg, x.dtype)
    blocks = _n_blocks(N, w.size, H_out * W_out, _lanes(x.dtype) if dw_path == "lanes" else 1)
    db_part = np.empty((blocks, F), dtype=x.dtype)

    # dx of a stride-1 conv is the full correlation of dout with the flipped, transposed
    # weights: a stride-1 conv with padding K-1-p, which Winograd or the direct kernel runs (the
    # batch-lane one on narrow maps); otherwise the GEMM path.
    # The direct, Winograd and stride-2 kernels add dx_add and apply the ReLU mask as they
    # store dx; after the other paths (and around a subsampled input) they are a pass of their own.
    qh, qw = KH - 1 - ph, KW - 1 - pw
    gate = x if relu_input else None
    res = dx_add if cache.sub is None else None
    dx_path = "gemm" if input_grad else None
    kernels = input_grad and not pointwise  # pointwise: dx (and dw) by BLAS
    if kernels and _s2_dx_ok(KH, KW, (sh, sw), (ph, pw), groups, C, H, W, x.dtype):
        dx_path = "s2"
        _s2_input_grad(dout, w, dx, res, gate, n)
    elif kernels and (sh, sw) == (1, 1) and qh >= 0 and qw >= 0:
        if _wino_ok(KH, KW, (1, 1), groups, F, C, H, W, x.dtype):
            dx_path = "winograd"
            _wino_conv(dout, w, None, dx, (qh, qw), n, residual=res, gate=gate, flip=True)
        elif _wino_lanes_ok(KH, KW, (1, 1), groups, F, C, H, W, x.dtype):
            dx_path = "winograd lanes"
            _wino_conv(dout, w, None, dx, (qh, qw), n, flip=True, lanes=True)
        elif _direct_ok(W, Cg, x.dtype):
            dx_path = "direct"
        elif _lanes_ok((1, 1), W, Cg, x.dtype):
            dx_path = "lanes"
        elif groups == 1 and _direct_ok(W, _pad4(Cg), x.dtype):
            dx_path = "direct padded"
    if dx_path in ("direct", "lanes", "direct padded"):
        wt = w.reshape(groups, Fg, Cg, KH, KW)[:, :, :, ::-1, ::-1].transpose(0, 2, 1, 3, 4)
        wt = wt.reshape(groups, Cg, Fg * KH * KW)
        if dx_path == "direct":
            _direct_conv(dout, wt, None, dx, KH, KW, (qh, qw), (1, 1), groups, n,
                         residual=res, gate=gate)
        elif dx_path == "lanes":
            _lanes_conv(dout, wt, None, dx, KH, KW, (qh, qw), groups, n)
        else:  # channels padded with zero weights up to a multiple of 4, then cropped
            wt4 = np.zeros((1, _pad4(Cg), Fg * KH * KW), x.dtype)
            wt4[:, :Cg] = wt
            dx4 = arena.empty((N, _pad4(Cg), H, W), x.dtype)
            _direct_conv(dout, wt4, None, dx4, KH, KW, (qh, qw), (1, 1), 1, n)
            np.copyto(dx, dx4[:, :Cg])
    if dw_path in ("winograd", "winograd lanes"):
        _wino_weight_grad(x, dout, dw, db, db_part, (ph, pw), blocks, n,
                          lanes=dw_path == "winograd lanes")
    if dw_path not in ("winograd", "winograd lanes") or dx_path == "gemm":  # block partials
        dw_part = arena.empty((blocks, w.size), dtype=x.dtype)
    if dw_path == "direct":
        off, vin, vout = _direct_plan(Cg, H, W, KH, KW, ph, pw, sh, sw, H_out, W_out,
                                      _lanes(x.dtype))
        Hq, Wq = _phase_dims(H, W, ph, pw, sh, sw)
        scratch = arena.empty((n, -(-N // blocks) * C * sh * sw * Hq * Wq), dtype=x.dtype)
        _k.direct_weight_grad(x, dout, dw.reshape(F, -1), db, dw_part, db_part, off, vin, vout,
                              scratch, ph, pw, sh, sw, groups, n)
    elif dw_path == "lanes":
        L = _lanes(x.dtype)
        off, vin, vout = _lanes_plan(Cg, H, W, KH, KW, ph, pw, H_out, W_out, L)
        per_block = -(-N // blocks)  # images in the largest batch block
        lane_groups = -(-per_block // L)
        per_group = (C * (H + 2 * ph) * (W + 2 * pw) + F * H_out * W_out) * L
        _k.lanes_weight_grad(x, dout, dw.reshape(F, -1), db, dw_part, db_part, off, vin, vout,
                             arena.empty((n, lane_groups * per_group), x.dtype), ph, pw, groups,
                             n)
    if dw_path == "gemm" or dx_path == "gemm":
        gemm_dw = dw_path == "gemm"
        _gemm_backward(x, w, dout, dx if dx_path == "gemm" else None, dw if gemm_dw else None,
                       db if gemm_dw else None, dw_part, db_part, cache, blocks, n)
    in_kernel = dx_path in ("direct", "winograd", "s2")
    add_late = dx_add is not None and (res is None or not in_kernel)
    if input_grad and relu_input and not in_kernel and not add_late:
        dx = relu_backward(dx, ReluCache(x), n_threads=n)
    if input_grad and cache.sub is not None:
        dx = subsample2d_backward(dx, cache.sub, n_threads=n)
    if add_late:
        dx = add_forward(dx, dx_add, gate=cache.x_in if relu_input else None, n_threads=n)[0]
    return dx, dw, db
