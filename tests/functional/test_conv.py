import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastres.functional as F
import fastres.reference as R
from fastres.gradcheck import directional_check, numerical_grad
from tests.conftest import TOL

DTYPES = [np.float32, np.float64]

# (N, C_in, H, W, C_out, KH, KW, stride, padding, groups): strides 1-3, padding 0-2, kernels
# 1-5, odd/even/non-square sizes, batch 1, groups; several hit the direct stride-1 kernels
# (W_out a multiple of 8 or 4 and channels a multiple of 4), the rest the im2col + BLAS path.
CONFIGS = [
    (2, 3, 8, 8, 16, 3, 3, 1, 1, 1),
    (2, 16, 16, 16, 16, 3, 3, 1, 1, 1),
    (1, 8, 8, 16, 8, 3, 3, 1, 1, 1),
    (3, 4, 7, 9, 6, 3, 3, 1, 1, 1),
    (2, 4, 9, 8, 6, 3, 2, 2, 0, 2),
    (2, 4, 10, 10, 8, 5, 5, 3, 2, 1),
    (2, 6, 5, 5, 6, 1, 1, 1, 0, 3),
    (2, 8, 8, 8, 16, 1, 1, 2, 0, 1),
    (1, 4, 6, 11, 4, 4, 2, 1, (2, 1), 1),
    (2, 8, 12, 8, 8, 3, 3, (1, 2), (0, 1), 4),
    (2, 8, 8, 8, 8, 3, 3, 1, 1, 8),  # depthwise
    (2, 16, 8, 8, 32, 3, 3, 2, 1, 1),  # the ResNet downsampling conv
    (1, 2, 3, 3, 2, 3, 3, 1, 2, 1),  # padding >= kernel/2
    (2, 8, 32, 32, 16, 3, 3, 2, 1, 1),  # strided direct kernel (polyphase input)
    (1, 4, 24, 26, 4, 3, 4, 3, 0, 2),
]

# Batches large enough that the im2col + GEMM path puts several images of a small feature map
# in one product (and the backward's fixed batch blocks hold several images, with a remainder).
BATCHED = [
    (37, 16, 4, 4, 24, 3, 3, 1, 1, 1),  # the MiniModel's 4x4 stage
    (37, 6, 5, 5, 6, 1, 1, 1, 0, 3),  # pointwise, grouped
    (37, 8, 6, 6, 8, 3, 3, 2, 1, 2),  # strided, grouped
    (21, 4, 7, 9, 6, 3, 3, 1, 1, 1),
    # stride 1 with rows narrower than a vector: the batch-lane direct kernels, 11-19 images
    # (lane groups with remainders), grouped, non-square with uneven padding, pointwise
    (19, 8, 6, 6, 16, 3, 3, 1, 1, 2),
    (11, 4, 5, 7, 8, 3, 3, 1, (1, 2), 1),
    (13, 8, 4, 4, 8, 1, 1, 1, 0, 1),
]

# 3x3 stride 1 with 32+ channels in and out: Winograd F(2x2, 3x3) for the forward, dx and dw, on
# whole-vector rows of tiles (16x16), half-vector ones (8x8 in float32), C_out not a multiple
# of 8, an odd channel count with no padding on a non-square map, padding 2, a batch of 37.
WINOGRAD = [
    (2, 32, 16, 16, 32, 3, 3, 1, 1, 1),
    (3, 32, 8, 8, 36, 3, 3, 1, 1, 1),
    (1, 33, 6, 18, 32, 3, 3, 1, 0, 1),
    (2, 32, 6, 6, 40, 3, 3, 1, 2, 1),
    (37, 32, 8, 8, 32, 3, 3, 1, 1, 1),  # batch blocks of 2-3 images: dw sums them together
]

# Winograd on the batch-lane layout: maps too narrow for the per-image Winograd (4x4, 6x6 out),
# lane groups with remainders (11 images), padding 0 / 1 / 2 (the input gradient of padding 0)
WINOGRAD_LANES = [
    (11, 16, 4, 4, 20, 3, 3, 1, 1, 1),
    (11, 20, 8, 8, 16, 3, 3, 1, 0, 1),
    (5, 16, 4, 6, 16, 3, 3, 1, (2, 1), 1),
    # odd planes, tiled one row / column larger and cropped: 7x7 (ResNet-18's last stage at
    # 224x224), 5x9, and 4x5 (input gradient 6x7)
    (11, 16, 7, 7, 20, 3, 3, 1, 1, 1),
    (3, 20, 5, 9, 16, 3, 3, 1, 1, 1),
    (9, 16, 6, 7, 16, 3, 3, 1, 0, 1),
]


def _spy(monkeypatch, module, names) -> list:
    """Wrap module's kernels `names` so that each call appends its name to the returned list."""
    calls = []
    for name in names:
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _r=real, _n=name: calls.append(_n) or _r(*a))
    return calls


def _run(cfg, dtype, rng, bias=True):
    N, C, H, W, Fo, KH, KW, s, p, g = cfg
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Fo, C // g, KH, KW)).astype(dtype)
    b = rng.standard_normal(Fo).astype(dtype) if bias else None
    return x, w, b, dict(stride=s, padding=p, groups=g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", CONFIGS + BATCHED + WINOGRAD + WINOGRAD_LANES)
def test_matches_reference(cfg, dtype, rng):
    x, w, b, kw = _run(cfg, dtype, rng)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    ref, rcache = R.conv2d_forward(x64, w64, b64, **kw)
    assert out.shape == ref.shape and out.dtype == dtype
    scale = np.abs(ref).max()
    np.testing.assert_allclose(out / scale, ref / scale, **TOL[dtype])
    dout = rng.standard_normal(out.shape).astype(dtype)
    grads = F.conv2d_backward(dout, cache)
    rgrads = R.conv2d_backward(dout.astype(np.float64), rcache)
    for got, want, like in zip(grads, rgrads, (x, w, b)):
        assert got.shape == like.shape and got.dtype == dtype
        scale = np.abs(want).max()
        np.testing.assert_allclose(got / scale, want / scale, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[13], BATCHED[0],
                                 (3, 3, 7, 9, 5, 3, 3, 2, 1, 1)])
def test_residual_relu_epilogue(cfg, dtype, rng):
    # relu(conv(x) + b + residual) as the output is stored: the direct kernels (16@16, strided
    # 32x32), the batch-lane ones (4x4) and the GEMM path (7x9; 5 channels) against the
    # reference
    x, w, b, kw = _run(cfg, dtype, rng)
    ref = R.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)[0]
    res = rng.standard_normal(ref.shape).astype(dtype)
    for residual, relu in ((res, False), (None, True), (res, True)):
        want = ref + (0 if residual is None else residual)
        want = np.maximum(want, 0) if relu else want
        out, cache = F.conv2d_forward(x, w, b, residual=residual, relu=relu, **kw)
        scale = np.abs(want).max()
        np.testing.assert_allclose(out / scale, want / scale, **TOL[dtype])
        if relu:
            assert (out >= 0).all()
        # the cache is the convolution's alone
        dx = F.conv2d_backward(np.ones_like(out), cache)[0]
        np.testing.assert_allclose(dx, F.conv2d_backward(np.ones_like(out),
                                                         F.conv2d_forward(x, w, b, **kw)[1])[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[2], CONFIGS[3], CONFIGS[7],
                                 CONFIGS[10], BATCHED[0], BATCHED[5]])
def test_relu_input_gradient(cfg, dtype, rng):
    # x is a ReLU's output: dx comes back multiplied by x > 0, on the direct dx kernel (16@16,
    # 8x16, depthwise; 3 channels padded to 4), the GEMM path (7x9, 4x4) and the subsampled 1x1
    # stride-2 path
    x, w, b, kw = _run(cfg, dtype, rng)
    x = np.maximum(x, 0)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dout, cache)
    gx, gw, gb = F.conv2d_backward(dout, cache, relu_input=True)
    assert (dx[x <= 0] != 0).any()  # the mask matters here
    np.testing.assert_array_equal(gx, np.where(x > 0, dx, 0))
    np.testing.assert_array_equal(gw, dw)
    np.testing.assert_array_equal(gb, db)
    with pytest.raises(TypeError, match="conv2d_backward: expected relu_input to be a bool, "
                                        "got 1"):
        F.conv2d_backward(dout, cache, relu_input=1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[3], CONFIGS[7], CONFIGS[13],
                                 BATCHED[0], BATCHED[5], WINOGRAD[0]])
def test_dx_add(cfg, dtype, rng):
    # dx + dx_add (then the ReLU mask): the padded direct path (3 channels), the direct kernel
    # (16@16, as dx is stored), the GEMM path
    # (7x9, 4x4), the subsampled 1x1 stride-2 path, the stride-2 direct path (32x32), the
    # batch-lane path and Winograd; the same numbers as the separate sum
    x, w, b, kw = _run(cfg, dtype, rng)
    x = np.maximum(x, 0)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dout, cache)
    other = rng.standard_normal(x.shape).astype(dtype)
    for relu_input in (False, True):
        gx, gw, gb = F.conv2d_backward(dout, cache, relu_input=relu_input, dx_add=other)
        want = dx + other
        np.testing.assert_array_equal(gx, np.where(x > 0, want, 0) if relu_input else want)
        np.testing.assert_array_equal(gw, dw)
        np.testing.assert_array_equal(gb, db)
    with pytest.raises(ValueError, match=r"conv2d_backward: expected dx_add of shape "
                                         rf"\({x.shape[0]}, {x.shape[1]}, {x.shape[2]}, "):
        F.conv2d_backward(dout, cache, dx_add=other[:, :, :-1])
    wrong = np.float64 if dtype == np.float32 else np.float32
    with pytest.raises(TypeError, match="conv2d_backward: .*dx_add"):
        F.conv2d_backward(dout, cache, dx_add=other.astype(wrong))
    with pytest.raises(ValueError, match="conv2d_backward: dx_add needs input_grad=True"):
        F.conv2d_backward(dout, cache, input_grad=False, dx_add=other)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[3], CONFIGS[7], CONFIGS[13],
                                 BATCHED[0], BATCHED[4], WINOGRAD[0], WINOGRAD_LANES[0]])
def test_fused_relu_keeps_nan(cfg, dtype, rng):
    # relu=True on every path's epilogue (direct, BLAS, batch-lane, Winograd): an output whose
    # true value is NaN stays NaN, as max(NaN, 0) does in the reference and torch.relu, rather
    # than turning into a finite 0. (Winograd spreads a NaN to its whole output tile.)
    x, w, b, kw = _run(cfg, dtype, rng)
    x[0, 0, x.shape[2] // 2, x.shape[3] // 2] = np.nan
    out = F.conv2d_forward(x, w, b, relu=True, **kw)[0]
    ref = R.conv2d_forward(x, w, b, **kw)[0]
    assert np.isnan(ref).any() and np.isnan(out)[np.isnan(ref)].all()


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[3], CONFIGS[7], WINOGRAD[0]])
def test_relu_input_without_input_grad(cfg, rng):
    # no dx to apply the ReLU's mask to: the parameters' gradients, as without relu_input
    x, w, b, kw = _run(cfg, np.float64, rng)
    out, cache = F.conv2d_forward(np.maximum(x, 0), w, b, **kw)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache, input_grad=False, relu_input=True)
    _, dw0, db0 = F.conv2d_backward(dout, cache)
    assert dx is None
    np.testing.assert_array_equal(dw, dw0)
    np.testing.assert_array_equal(db, db0)


def test_reference_refuses_a_kernel_larger_than_the_padded_input():
    # as the fast path does: (4 - 5) // 1 + 1 = 0 rows would be an empty output
    with pytest.raises(ValueError, match=r"conv2d_forward: kernel height 5 is larger than the "
                                         r"padded input height 2 \+ 2\*1 = 4"):
        R.conv2d_forward(np.ones((1, 1, 2, 2)), np.ones((1, 1, 5, 5)), padding=1)


def test_a_huge_stride_and_padding_is_refused_not_allocated():
    # the kernels' padded (polyphase) copy of an image would need ~900 GiB: a ValueError
    # naming the op, not a MemoryError from the allocation
    x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((2, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"conv2d_forward: x \(1, 2, 5, 5\) with w "
                                         r"\(2, 2, 3, 3\), stride .* too large for the kernels"):
        F.conv2d_forward(x, w, stride=2**31 - 1, padding=2**30)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_forward_path(dtype, rng, monkeypatch):
    # 1x1 forwards on maps the direct kernel takes: BLAS unless the channels narrow on a small
    # map (widening, narrowing), fastres' own kernel when strided with few channels; each with
    # bias, residual and ReLU, against the reference
    import fastres.functional.conv as fc
    calls = _spy(monkeypatch, fc._k, ("conv2d_forward", "direct_forward", "pointwise_forward"))
    cases = [((2, 8, 16, 16, 16, 1, 1, 1, 0, 1), "conv2d_forward"),
             ((2, 8, 32, 32, 16, 1, 1, 2, 0, 1), "pointwise_forward"),
             ((2, 128, 8, 8, 128, 1, 1, 2, 0, 1), "conv2d_forward"),  # wide: BLAS
             ((2, 16, 8, 8, 8, 1, 1, 1, 0, 1), "direct_forward")]
    for cfg, kernel in cases:
        x, w, b, kw = _run(cfg, dtype, rng)
        H_out = -(-cfg[2] // cfg[7])
        res = rng.standard_normal((cfg[0], cfg[4], H_out, H_out)).astype(dtype)
        calls.clear()
        out, _ = F.conv2d_forward(x, w, b, residual=res, relu=True, **kw)
        assert calls == [kernel]
        ref = R.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)[0]
        np.testing.assert_allclose(out, np.maximum(ref + res, 0), **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_pointwise_backward_by_gemm(dtype, rng, monkeypatch):
    # 1x1 convolutions (grouped, on a 4x4 map, a 16x16 one): dx and dw by BLAS, with the ReLU
    # mask and dx_add applied after it, against the direct / batch-lane kernels (which the
    # grouped one, 2 channels a group, cannot take)
    import fastres.functional.conv as fc
    calls = []
    real = fc._gemm_backward
    monkeypatch.setattr(fc, "_gemm_backward", lambda *a: calls.append(1) or real(*a))
    cfgs = [CONFIGS[6], BATCHED[6], (2, 8, 16, 16, 16, 1, 1, 1, 0, 1)]
    for cfg in cfgs:
        x, w, b, kw = _run(cfg, dtype, rng)
        x = np.maximum(x, 0)
        out, cache = F.conv2d_forward(x, w, b, **kw)
        other = rng.standard_normal(x.shape).astype(dtype)
        runs = []
        for gemm in (True, False):
            monkeypatch.setattr(fc, "_POINTWISE_GEMM", gemm)
            runs.append(F.conv2d_backward(np.cos(out), cache, relu_input=True, dx_add=other))
        for a, g in zip(*runs):
            scale = np.abs(g).max()
            np.testing.assert_allclose(a / scale, g / scale, **TOL[dtype])
    assert len(calls) == len(cfgs) + 1  # the grouped one (2 channels a group) takes BLAS anyway


# Strided pointwise convolutions (fr_pointwise.h): stride 2 on even and odd maps, strides 3 and
# (2, 1) / (1, 3), channel counts off the kernels' tiles of 4 rows and 2 channels, planes off
# their 16 pixels and 8 lanes, a batch of 37 (weight-gradient blocks with a remainder).
POINTWISE_STRIDED = [
    (2, 16, 32, 32, 32, 1, 1, 2, 0, 1),  # ResNet's shortcut
    (3, 5, 9, 11, 7, 1, 1, 2, 0, 1),
    (2, 3, 10, 7, 6, 1, 1, 3, 0, 1),
    (2, 4, 6, 5, 9, 1, 1, (2, 1), 0, 1),
    (1, 6, 7, 13, 2, 1, 1, (1, 3), 0, 1),
    (37, 8, 6, 6, 12, 1, 1, 2, 0, 1),
]


@pytest.mark.parametrize("cfg", POINTWISE_STRIDED)
@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_pointwise_kernels(cfg, dtype, rng, monkeypatch):
    # forward (bias, residual + ReLU), dx (dx_add and the ReLU mask, streamed or not), dw, db by
    # fastres' kernels against the reference, and against the subsample + stride-1 path they
    # replaced on the same data
    import fastres._config as config
    import fastres.functional.conv as fc
    calls = _spy(monkeypatch, fc._k, ("pointwise_forward", "pointwise_backward"))
    x, w, b, kw = _run(cfg, dtype, rng)
    x = np.maximum(x, 0)
    x[0, 0, 0, :] = 0  # exact zeros: masked by relu_input
    out, cache = F.conv2d_forward(x, w, b, **kw)
    res = rng.standard_normal(out.shape).astype(dtype)
    fused = F.conv2d_forward(x, w, b, residual=res, relu=True, **kw)[0]
    dout = np.cos(out)
    other = rng.standard_normal(x.shape).astype(dtype)
    grads = F.conv2d_backward(dout, cache)
    masked = F.conv2d_backward(dout, cache, relu_input=True, dx_add=other)[0]
    no_dx = F.conv2d_backward(dout, cache, input_grad=False)
    monkeypatch.setattr(config, "STREAM_FROM_BYTES", 0)
    streamed = F.conv2d_backward(dout, cache, relu_input=True, dx_add=other)[0]
    assert calls == ["pointwise_forward"] * 2 + ["pointwise_backward"] * 4

    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    ref, rcache = R.conv2d_forward(x64, w64, b64, **kw)
    rdx, rdw, rdb = R.conv2d_backward(dout.astype(np.float64), rcache)
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    np.testing.assert_allclose(fused, np.maximum(ref + res, 0), **TOL[dtype])
    for got, want in zip(grads, (rdx, rdw, rdb)):
        np.testing.assert_allclose(got, want, **TOL[dtype])
    np.testing.assert_allclose(masked, (rdx + other) * (x > 0), **TOL[dtype])
    np.testing.assert_array_equal(streamed, masked)
    assert no_dx[0] is None
    np.testing.assert_array_equal(no_dx[1], grads[1])
    np.testing.assert_array_equal(no_dx[2], grads[2])

    monkeypatch.setattr(fc, "_POINTWISE_STRIDED", False)
    old = F.conv2d_forward(x, w, b, **kw)
    old_grads = F.conv2d_backward(dout, old[1], relu_input=True, dx_add=other)
    assert len(calls) == 6
    np.testing.assert_allclose(out, old[0], **TOL[dtype])
    for got, want in zip((masked, *grads[1:]), old_grads):
        np.testing.assert_allclose(got, want, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_pointwise_thread_invariance(dtype, rng):
    x, w, b, kw = _run(POINTWISE_STRIDED[5], dtype, rng)
    runs = []
    for t in (1, 2, 3):
        out, cache = F.conv2d_forward(x, w, b, n_threads=t, **kw)
        runs.append((out, *F.conv2d_backward(np.cos(out), cache, n_threads=t)))
    for other in runs[1:]:
        for a, b_ in zip(runs[0], other):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batch_lane_path_is_taken_and_matches_gemm(dtype, rng, monkeypatch):
    # 4x4 and 6x6 maps: forward, dx and dw by the batch-lane kernels, against the other paths
    # (im2col + GEMM, the per-image direct kernel) on the same data
    import fastres.functional.conv as fc
    monkeypatch.setattr(fc, "_WINOGRAD", False)  # which would take the 16-channel float64 maps
    calls = _spy(monkeypatch, fc._k, ("lanes_forward", "lanes_weight_grad"))
    for cfg in (BATCHED[0], BATCHED[4]):
        x, w, b, kw = _run(cfg, dtype, rng)
        runs = []
        for lanes in (True, False):
            monkeypatch.setattr(fc, "_BATCH_LANES", lanes)
            out, cache = F.conv2d_forward(x, w, b, **kw)
            runs.append((out, *F.conv2d_backward(np.cos(out), cache)))
        for a, g in zip(*runs):
            scale = np.abs(g).max()
            np.testing.assert_allclose(a / scale, g / scale, **TOL[dtype])
    # forward and dx: float64 4x4 rows are whole vectors (the per-image direct kernel); the
    # weight gradient of every stride-1 map up to 16x16 takes the lanes
    assert calls.count("lanes_forward") == (2 if dtype == np.float64 else 4)
    assert calls.count("lanes_weight_grad") == 2


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_path_is_taken_and_matches_direct(dtype, rng, monkeypatch):
    # forward with bias, residual and ReLU, dx with the ReLU-input mask, dw and db, by Winograd
    # and by the direct kernels on the same data (both also against the reference above)
    import fastres.functional.conv as fc
    calls = _spy(monkeypatch, fc._k, ("winograd_forward", "winograd_weight_grad"))
    for cfg in WINOGRAD:
        x, w, b, kw = _run(cfg, dtype, rng)
        x = np.maximum(x, 0)
        res = rng.standard_normal(F.conv2d_forward(x, w, **kw)[0].shape).astype(dtype)
        runs = []
        for wino, group in ((True, 1), (True, 1 << 20), (False, 1)):
            monkeypatch.setattr(fc, "_WINOGRAD", wino)
            monkeypatch.setattr(fc, "_WINO_DW_GROUP_ELEMS", group)
            calls.clear()
            out, cache = F.conv2d_forward(x, w, b, residual=res, relu=True, **kw)
            runs.append((out, *F.conv2d_backward(np.cos(out), cache, relu_input=True)))
            # dx is a 3x3 convolution of dout with padding 2 - p: Winograd's when p = 1 (the
            # others give odd output sizes)
            n_forward = 1 + (kw["padding"] == 1)
            assert calls == (["winograd_forward"] * n_forward + ["winograd_weight_grad"]
                             if wino else [])
        for run in runs[:2]:
            for a, g in zip(run, runs[2]):
                scale = np.abs(g).max()
                np.testing.assert_allclose(a / scale, g / scale, **TOL[dtype])
        assert (runs[0][0] >= 0).all() and (runs[0][1][x <= 0] == 0).all()


# Winograd F(4x4, 3x3) in float32: image by image on maps of whole vectors of 4x4 tiles, the
# input gradient of padding 0 / 2 (18x18 / 14x14 maps) on the batch-lane layout
WINOGRAD4 = [
    (2, 16, 32, 32, 16, 3, 3, 1, 1, 1),
    (3, 20, 16, 32, 24, 3, 3, 1, 1, 1),  # non-square; C_in not a multiple of 4
    (2, 16, 18, 18, 16, 3, 3, 1, 0, 1),
    (2, 16, 14, 14, 16, 3, 3, 1, 2, 1),
    # the batch-lane layout: maps narrower than whole vectors (4x4, 28x28) or not multiples of
    # 4 (7x7, 14x14: computed up to 8x8, 16x16 and cropped); 11 images: a short lane group
    (11, 16, 4, 4, 20, 3, 3, 1, 1, 1),
    (11, 20, 7, 7, 16, 3, 3, 1, 1, 1),
    (9, 16, 14, 14, 16, 3, 3, 1, 1, 1),
    (3, 16, 28, 28, 20, 3, 3, 1, 1, 1),
]


@pytest.mark.parametrize("cfg", WINOGRAD4)
def test_winograd4_path_is_taken_and_matches_reference(cfg, rng, monkeypatch):
    # forward with bias, residual and ReLU, dx with the ReLU-input mask, dw and db by F(4x4,
    # 3x3) against the float64 reference, and the same with F(4x4) off (F(2x2) or the direct
    # kernels)
    import fastres.functional.conv as fc
    monkeypatch.setattr(fc, "_WINO4_MIN_SAVED", 0)  # these small batches too
    rows = []  # the Winograd variant (16 or 36 elements) of each transform, in call order
    real_w, real_dw = fc._k.winograd_weights, fc._k.winograd_weight_grad
    monkeypatch.setattr(fc._k, "winograd_weights",
                        lambda *a: rows.append(a[2].shape[0]) or real_w(*a))
    monkeypatch.setattr(fc._k, "winograd_weight_grad",
                        lambda *a: rows.append(a[4].shape[0]) or real_dw(*a))
    x, w, b, kw = _run(cfg, np.float32, rng)
    x = np.maximum(x, 0)
    out0, cache = F.conv2d_forward(x, w, b, **kw)
    res = rng.standard_normal(out0.shape).astype(np.float32)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    ref, rcache = R.conv2d_forward(x64, w64, b64, **kw)
    ref = np.maximum(ref + res, 0)
    dout = np.cos(out0) * (ref > 0)  # through the ReLU (masked by the reference, for both)
    rdx, rdw, rdb = R.conv2d_backward(dout.astype(np.float64), rcache)
    want = (ref, rdx * (x > 0), rdw, rdb)
    runs = []
    for on in (True, False):
        monkeypatch.setattr(fc, "_WINOGRAD4", on)
        rows.clear()
        out, cache = F.conv2d_forward(x, w, b, residual=res, relu=True, **kw)
        runs.append((out, *F.conv2d_backward(dout, cache, relu_input=True)))
        # forward, dx, dw
        assert rows == [36 if on else 16] * 3
    for run in runs:
        for got, wanted in zip(run, want):
            scale = np.abs(wanted).max()
            np.testing.assert_allclose(got / scale, wanted / scale, **TOL[np.float32])
    assert (runs[0][0] >= 0).all() and (runs[0][1][x <= 0] == 0).all()


def test_winograd4_variant_choice():
    # F(4x4) where a float32 batch saves enough multiplications per channel pair for its larger
    # weight transforms; never in float64, nor where its padding costs (6x6 on lanes)
    from fastres.functional.conv import _wino_m
    f32 = np.float32
    assert _wino_m(128, 32, 32, f32, False) == 4 and _wino_m(2, 32, 32, f32, False) == 4
    assert _wino_m(1, 32, 32, f32, False) == 2 and _wino_m(128, 32, 32, np.float64, False) == 2
    assert _wino_m(32, 7, 7, f32, True) == 4 and _wino_m(32, 4, 4, f32, True) == 2
    assert _wino_m(128, 6, 6, f32, True) == 2 and _wino_m(32, 28, 28, f32, True) == 4


@pytest.mark.parametrize("N", [1, 2, 3])
def test_winograd4_small_batch_bands(N, rng, monkeypatch):
    # fewer images than threads: each image's F(4x4) tiles cut into bands, one per thread (8
    # vectors of tiles for 3 and 5 threads: uneven bands), with the residual and ReLU epilogue
    import fastres.functional.conv as fc
    monkeypatch.setattr(fc, "_WINO4_MIN_SAVED", 0)
    x, w, b, kw = _run((N, *WINOGRAD4[0][1:]), np.float32, rng)
    res = np.sin(F.conv2d_forward(x, w, **kw)[0])
    runs = [F.conv2d_forward(x, w, b, residual=res, relu=True, n_threads=t, **kw)[0]
            for t in (1, 2, 3, 5)]
    for out in runs[1:]:
        np.testing.assert_array_equal(out, runs[0])
    ref = R.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)[0]
    expected = np.maximum(ref + res, 0)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(runs[0] / scale, expected / scale, **TOL[np.float32])


@pytest.mark.parametrize("cfg", [WINOGRAD4[1], WINOGRAD4[5]])
def test_winograd4_thread_invariance(cfg, rng):
    x, w, b, kw = _run((37, *cfg[1:]), np.float32, rng)
    runs = []
    for t in (1, 2, 3):
        out, cache = F.conv2d_forward(x, w, b, n_threads=t, **kw)
        runs.append((out, *F.conv2d_backward(np.cos(out), cache, n_threads=t)))
    for run in runs[1:]:
        for a, b_ in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b_)


def test_winograd4_kernel_refuses_what_it_cannot_index():
    # F(4x4, 3x3) weights (36 rows) only in float32, and only for maps of whole vectors of
    # 4x4 tiles; the scratch must hold its 36 planes
    from fastres._kernels import _conv as k
    w = np.zeros((16, 16, 3, 3))
    with pytest.raises(ValueError, match=r"winograd_weights: expected upk with 16 rows"):
        k.winograd_weights(w, False, np.zeros((36, 256)), 1)
    x = np.zeros((1, 16, 8, 8), np.float32)
    out = np.zeros((1, 16, 8, 8), np.float32)
    upk = np.zeros((36, 256), np.float32)
    big = np.zeros((1, 1 << 16), np.float32)
    with pytest.raises(ValueError, match=r"winograd_forward: expected output planes of "
                                         r"multiples of 4 with W_out/4 a multiple of 4"):
        k.winograd_forward(x, upk, None, None, False, None, out, big, 1, 1, 1)
    x, out = np.zeros((1, 16, 16, 16), np.float32), np.zeros((1, 16, 16, 16), np.float32)
    need = 18 * 18 + 36 * (32 * 16 + 2 * k.winograd_gap)
    with pytest.raises(ValueError, match="winograd_forward"):
        k.winograd_forward(x, upk, None, None, False, None, out,
                           np.zeros((1, need - 1), np.float32), 1, 1, 1)
    k.winograd_forward(x, upk, None, None, False, None, out, np.zeros((1, need), np.float32),
                       1, 1, 1)
    # 36-row weights and sums: float32 only
    x64, d64 = np.zeros((1, 16, 16, 16)), np.zeros((1, 16, 16, 16))
    with pytest.raises(ValueError, match=r"winograd_weight_grad: expected dwt with 16 rows"):
        k.winograd_weight_grad(x64, d64, np.zeros((16, 16, 3, 3)), None, np.zeros((36, 256)),
                               np.zeros((1, 36 * 256)), np.zeros((1, 16)),
                               np.zeros((1, 1 << 16)), None, 1, 1, 1, False, 1)
    with pytest.raises(ValueError, match=r"winograd_lanes_forward: expected upk with 16 rows"):
        k.winograd_lanes_forward(x64, np.zeros((36, 256)), None, None, False, d64,
                                 np.zeros((1, 1 << 18)), 1, 1, 1)
    # the batch-lane F(4x4) scratch: (C*(He + 2)*(We + 2) + F*He*We)*L + 36*((C + F)*NTL + 2*gap)
    # for 7x7 maps computed as 8x8 (the F(2x2) size, for 8x8 too, is smaller)
    x7, o7 = np.zeros((3, 16, 7, 7), np.float32), np.zeros((3, 16, 7, 7), np.float32)
    need = (16 * 10 * 10 + 16 * 64) * 8 + 36 * (32 * 4 * 8 + 2 * k.winograd_gap)
    with pytest.raises(ValueError, match="winograd_lanes_forward"):
        k.winograd_lanes_forward(x7, upk, None, None, False, o7,
                                 np.zeros((1, need - 1), np.float32), 1, 1, 1)
    k.winograd_lanes_forward(x7, upk, None, None, False, o7, np.zeros((1, need), np.float32),
                             1, 1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cfg", [WINOGRAD4[0], WINOGRAD4[4], WINOGRAD[1]])
def test_weight_cache_keeps_the_winograd_transform(cfg, dtype, rng, monkeypatch):
    # per image and on the batch-lane layout: the transform runs once per cache dict, and the
    # outputs are those without a cache, bit for bit
    import fastres.functional.conv as fc
    monkeypatch.setattr(fc, "_WINO4_MIN_SAVED", 0)
    calls = _spy(monkeypatch, fc._k, ("winograd_weights",))
    x, w, b, kw = _run(cfg, dtype, rng)
    plain = F.conv2d_forward(x, w, b, **kw)[0]
    cache = {}
    outs = [F.conv2d_forward(x, w, b, weight_cache=cache, **kw)[0] for _ in range(3)]
    assert calls == ["winograd_weights"] * 2
    for out in outs:
        np.testing.assert_array_equal(out, plain)
    with pytest.raises(TypeError, match="conv2d_forward: expected weight_cache to be a dict or "
                                        "None, got list"):
        F.conv2d_forward(x, w, weight_cache=[], **kw)


@pytest.mark.parametrize("dtype", DTYPES)
def test_padded_input_grad_path_is_taken(dtype, rng, monkeypatch):
    # input channels the direct kernel cannot take as outputs (3, 6): dx on it with the channels
    # padded to 4 / 8 by zero weights, cropped; against the reference
    import fastres.functional.conv as fc
    shapes = []
    real = fc._k.direct_forward
    monkeypatch.setattr(fc._k, "direct_forward", lambda *a: shapes.append(a[6].shape) or real(*a))
    for cfg in ((3, 3, 16, 16, 8, 3, 3, 1, 1, 1), (2, 6, 8, 16, 8, 5, 5, 1, 2, 1)):
        x, w, b, kw = _run(cfg, dtype, rng)
        out, cache = F.conv2d_forward(x, w, b, **kw)
        shapes.clear()
        dx = F.conv2d_backward(np.cos(out), cache)[0]
        assert shapes == [(cfg[0], -(-cfg[1] // 4) * 4, cfg[2], cfg[3])]
        rcache = R.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)[1]
        want = R.conv2d_backward(np.cos(out).astype(np.float64), rcache)[0]
        scale = np.abs(want).max()
        np.testing.assert_allclose(dx / scale, want / scale, **TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_stride2_input_grad_path_is_taken_and_matches_gemm(dtype, rng, monkeypatch):
    # ResNet's downsampling conv (3x3, stride 2, padding 1): dx by the direct kernel one output
    # phase at a time, with and without the ReLU-input mask, against im2col + BLAS
    import fastres.functional.conv as fc
    calls = []
    real = fc._k.direct_input_grad_s2
    monkeypatch.setattr(fc._k, "direct_input_grad_s2", lambda *a: calls.append(1) or real(*a))
    for cfg in ((3, 16, 32, 32, 32, 3, 3, 2, 1, 1), (2, 4, 16, 48, 12, 3, 3, 2, 1, 1)):
        x, w, b, kw = _run(cfg, dtype, rng)
        x = np.maximum(x, 0)
        runs = []
        for direct in (True, False):
            monkeypatch.setattr(fc, "_S2_DIRECT_DX", direct)
            out, cache = F.conv2d_forward(x, w, b, **kw)
            runs.append((F.conv2d_backward(np.cos(out), cache)[0],
                         F.conv2d_backward(np.cos(out), cache, relu_input=True)[0]))
        for a, g in zip(*runs):
            scale = np.abs(g).max()
            np.testing.assert_allclose(a / scale, g / scale, **TOL[dtype])
        np.testing.assert_array_equal(runs[0][1], np.where(x > 0, runs[0][0], 0))
    assert len(calls) == 4


def test_reference_by_hand():
    # 3x3 input, 2x2 kernel of ones, stride 1: each output is the sum of a 2x2 window.
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    out, cache = R.conv2d_forward(x, np.ones((1, 1, 2, 2)), np.array([0.5]))
    np.testing.assert_array_equal(out, [[[[8.5, 12.5], [20.5, 24.5]]]])
    dx, dw, db = R.conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_array_equal(dw[0, 0], [[8, 12], [20, 24]])
    np.testing.assert_array_equal(db, [4])


def test_no_bias_and_no_input_grad(rng):
    x, w, _, kw = _run(CONFIGS[1], np.float64, rng, bias=False)
    out, cache = F.conv2d_forward(x, w, **kw)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)
    assert db is None
    dx2, dw2, _ = F.conv2d_backward(dout, cache, input_grad=False)
    assert dx2 is None
    np.testing.assert_array_equal(dw2, dw)


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[3], CONFIGS[4], CONFIGS[8], CONFIGS[9]])
def test_numerical_gradient(cfg, rng):
    N, C, H, W, Fo, KH, KW, s, p, g = cfg
    x, w, b, kw = _run((1, C, min(H, 6), min(W, 8), Fo, KH, KW, s, p, g), np.float64, rng)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = F.conv2d_backward(dout, cache)
    f = lambda: F.conv2d_forward(x, w, b, **kw)[0]  # noqa: E731
    for arr, grad in ((x, dx), (w, dw), (b, db)):
        np.testing.assert_allclose(grad, numerical_grad(f, arr, dout), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("cfg", [CONFIGS[1], CONFIGS[11]])
def test_directional_derivative(cfg, rng):
    x, w, b, kw = _run(cfg, np.float64, rng)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    dout = rng.standard_normal(out.shape)
    grads = F.conv2d_backward(dout, cache)
    err = directional_check(lambda: F.conv2d_forward(x, w, b, **kw)[0], (x, w, b), grads, dout)
    assert err < 1e-7


@pytest.mark.parametrize("cfg", [CONFIGS[0], CONFIGS[1], CONFIGS[5], CONFIGS[11], *BATCHED[:3],
                                 BATCHED[4], WINOGRAD[1], (2, 8, 16, 16, 8, 3, 3, 2, 1, 1),
                                 (2, 8, 16, 16, 16, 1, 1, 2, 0, 1)])
def test_thread_invariance(cfg, rng):
    x, w, b, kw = _run((37, *cfg[1:]), np.float32, rng)
    runs = []
    for t in (1, 2, 3):
        out, cache = F.conv2d_forward(x, w, b, n_threads=t, **kw)
        dout = np.cos(out)  # same dout in every run
        runs.append((out, *F.conv2d_backward(dout, cache, n_threads=t)))
    for run in runs[1:]:
        for a, b_ in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("dtype", DTYPES)
def test_winograd_lanes_path_is_taken_and_matches_direct(dtype, rng, monkeypatch):
    import fastres.functional.conv as fc
    calls = []
    real_fwd, real_dw = fc._k.winograd_lanes_forward, fc._k.winograd_weight_grad
    monkeypatch.setattr(fc._k, "winograd_lanes_forward",
                        lambda *a: calls.append("forward") or real_fwd(*a))
    monkeypatch.setattr(fc._k, "winograd_weight_grad",  # its lanes flag is the 14th argument
                        lambda *a: calls.append("dw" if a[13] else "dw per image") or real_dw(*a))
    taken = 0
    for cfg in WINOGRAD_LANES:
        x, w, b, kw = _run(cfg, dtype, rng)
        x = np.maximum(x, 0)
        res = rng.standard_normal(F.conv2d_forward(x, w, **kw)[0].shape).astype(dtype)
        runs = []
        for wino in (True, False):
            monkeypatch.setattr(fc, "_WINOGRAD", wino)
            calls.clear()
            out, cache = F.conv2d_forward(x, w, b, residual=res, relu=True, **kw)
            runs.append((out, *F.conv2d_backward(np.cos(out), cache, relu_input=True)))
            C, Fo = w.shape[1], w.shape[0]
            if wino and fc._wino_lanes_ok(3, 3, (1, 1), 1, C, Fo, *out.shape[2:], x.dtype):
                taken += 1
                assert calls[0] == "forward" and calls[-1] == "dw"
        for a, g in zip(*runs):
            scale = np.abs(g).max()
            np.testing.assert_allclose(a / scale, g / scale, **TOL[dtype])
        ref, _ = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64),
                                  b.astype(np.float64), **kw)
        expected = np.maximum(ref + res, 0)
        np.testing.assert_allclose(runs[0][0] / np.abs(expected).max(),
                                   expected / np.abs(expected).max(), **TOL[dtype])
    assert taken >= 5


# 5 lane groups: the weight gradient's shared transforms; 17 (4x4 maps): two uneven blocks
@pytest.mark.parametrize("cfg, N", [(WINOGRAD_LANES[0], 37), (WINOGRAD_LANES[1], 37),
                                    (WINOGRAD_LANES[0], 130), (WINOGRAD_LANES[3], 37)])
def test_winograd_lanes_thread_invariance(cfg, N, rng):
    x, w, b, kw = _run((N, *cfg[1:]), np.float32, rng)
    runs = []
    for t in (1, 2, 3):
        out, cache = F.conv2d_forward(x, w, b, n_threads=t, **kw)
        runs.append((out, *F.conv2d_backward(np.cos(out), cache, n_threads=t)))
    for run in runs[1:]:
        for a, b_ in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b_)
    want = R.conv2d_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)[0]
    scale = np.abs(want).max()
    np.testing.assert_allclose(runs[0][0] / scale, want / scale, **TOL[np.float32])


def test_gemm_products_cut_the_batch_evenly():
    # the im2col + GEMM path's products: images side by side up to the column budget, at least
    # two products, an even count where there are images enough (two threads share them evenly)
    import fastres.functional.conv as fc
    assert fc._images_per_product(32, 49) == 4  # 8 products of 4, not 7 of 5
    for N in range(1, 70):
        for P in (1, 16, 49, 64, 100, 256, 1024):
            nb = fc._images_per_product(N, P)
            products = -(-N // nb)
            assert 1 <= nb <= N and (nb == 1 or nb * P <= fc._GEMM_COLS)
            assert products >= min(N, fc._MIN_PRODUCTS)
            assert -(-N // products) == nb  # evened out: no product much smaller than the rest
            if products % 2 and products < N:  # odd only where evening out made it so
                assert -(-N // (products + 1)) == nb


@pytest.mark.parametrize("N", [1, 2, 3])
@pytest.mark.parametrize("cfg", [WINOGRAD[0], WINOGRAD[1], WINOGRAD[3],
                                 (1, 16, 7, 7, 32, 3, 3, 2, 1, 1), (1, 8, 6, 6, 8, 3, 3, 1, 1, 1)])
def test_small_batch_thread_invariance(cfg, N, rng):
    # fewer images than threads: Winograd cuts each image into bands of tiles, one per thread
    # (64 tiles for 3 and 5 threads: uneven and empty bands), with the residual and ReLU
    # epilogue; the GEMM path (a stride-2 conv on 7x7 maps) cuts the batch into two products
    # and two weight-gradient blocks, the batch-lane path (6x6) into one lane group
    x, w, b, kw = _run((N, *cfg[1:]), np.float32, rng)
    x = np.maximum(x, 0)
    res = np.sin(F.conv2d_forward(x, w, **kw)[0])
    runs = []
    for t in (1, 2, 3, 5):
        out, cache = F.conv2d_forward(x, w, b, residual=res, relu=True, n_threads=t, **kw)
        runs.append((out, *F.conv2d_backward(np.cos(out), cache, relu_input=True, n_threads=t)))
    ref = R.conv2d_forward(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                           **kw)[0]
    expected = np.maximum(ref + res, 0)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(runs[0][0] / scale, expected / scale, **TOL[np.float32])
    for run in runs[1:]:
        for a, b_ in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b_)


def test_non_contiguous_input(rng):
    x = rng.standard_normal((2, 8, 8, 4)).transpose(0, 3, 1, 2)  # NHWC memory
    w = rng.standard_normal((4, 4, 3, 3))
    out, _ = F.conv2d_forward(x, w, padding=1)
    np.testing.assert_allclose(out, R.conv2d_forward(x, w, padding=1)[0], **TOL[np.float64])


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 3), Cg=st.sampled_from([1, 2, 4]), Fg=st.sampled_from([1, 3, 4, 8]),
    groups=st.integers(1, 3),
    H=st.integers(1, 12), W=st.integers(1, 16), KH=st.integers(1, 5), KW=st.integers(1, 5),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 2), pw=st.integers(0, 2),
    bias=st.booleans(), seed=st.integers(0, 2**16),
)
def test_property_random_configs(N, Cg, Fg, groups, H, W, KH, KW, sh, sw, ph, pw, bias, seed):
    if KH > H + 2 * ph or KW > W + 2 * pw:
        with pytest.raises(ValueError, match="conv2d_forward: kernel"):
            F.conv2d_forward(np.ones((N, Cg * groups, H, W)), np.ones((Fg * groups, Cg, KH, KW)),
                             stride=(sh, sw), padding=(ph, pw), groups=groups)
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, Cg * groups, H, W))
    w = rng.standard_normal((Fg * groups, Cg, KH, KW))
    b = rng.standard_normal(Fg * groups) if bias else None
    kw = dict(stride=(sh, sw), padding=(ph, pw), groups=groups)
    out, cache = F.conv2d_forward(x, w, b, **kw)
    ref, rcache = R.conv2d_forward(x, w, b, **kw)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(F.conv2d_backward(dout, cache), R.conv2d_backward(dout, rcache)):
        if want is None:
            assert got is None
        else:
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


X = np.ones((2, 4, 8, 8))
W3 = np.ones((8, 4, 3, 3))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(x=np.ones((4, 8, 8)), w=W3), ValueError,
         r"conv2d_forward: expected 4-D x \(N, C_in, H, W\), got shape \(4, 8, 8\)"),
        (dict(x=X, w=np.ones((8, 3, 3, 3))), ValueError,
         r"conv2d_forward: expected w of shape .* \(8, 4, 3, 3\) for x \(2, 4, 8, 8\) and "
         r"groups=1, got w \(8, 3, 3, 3\)"),
        (dict(x=X.astype(np.int32), w=W3), TypeError,
         r"conv2d_forward: expected x of dtype float32 or float64, got int32"),
        (dict(x=X, w=W3.astype(np.float32)), TypeError,
         r"conv2d_forward: expected all operands to share one dtype, got x=float64, w=float32"),
        (dict(x=X, w=W3, b=np.ones(7)), ValueError,
         r"conv2d_forward: expected b of shape \(8,\), got \(7,\)"),
        (dict(x=X, w=np.ones((8, 4, 11, 3))), ValueError,
         r"conv2d_forward: kernel height 11 is larger than the padded input height 8 \+ 2\*0"),
        (dict(x=X, w=W3, stride=0), ValueError, r"conv2d_forward: expected stride >= 1, got 0"),
        (dict(x=X, w=W3, padding=-1), ValueError,
         r"conv2d_forward: expected padding >= 0, got -1"),
        (dict(x=X, w=W3, stride=1.5), TypeError,
         r"conv2d_forward: expected stride to be an int or a pair of ints, got 1.5"),
        (dict(x=X, w=np.ones((8, 2, 3, 3)), groups=3), ValueError,
         r"conv2d_forward: expected groups to divide C_in and C_out, got groups=3"),
        (dict(x=X, w=W3, groups=0), ValueError,
         r"conv2d_forward: expected groups to be a positive int, got 0"),
        (dict(x=np.ones((2, 4, 0, 8)), w=W3), ValueError,
         r"conv2d_forward: expected a non-empty x, got shape \(2, 4, 0, 8\)"),
        (dict(x=X, w=W3, residual=np.ones((2, 8, 6, 7))), ValueError,
         r"conv2d_forward: expected residual of shape \(2, 8, 6, 6\), got \(2, 8, 6, 7\)"),
        (dict(x=X, w=W3, residual=np.ones((2, 8, 6, 6), np.float32)), TypeError,
         r"conv2d_forward: expected all operands to share one dtype"),
        (dict(x=X, w=W3, relu=1), TypeError, r"conv2d_forward: expected relu to be a bool, got 1"),
    ],
)
def test_bad_input_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        F.conv2d_forward(**kwargs)


def test_backward_rejects_mismatched_dout():
    out, cache = F.conv2d_forward(X, W3, padding=1)
    with pytest.raises(ValueError, match=r"conv2d_backward: expected dout of shape \(2, 8, 8, 8\), "
                                         r"got \(2, 8, 8, 7\)"):
        F.conv2d_backward(np.ones((2, 8, 8, 7)), cache)
    with pytest.raises(TypeError, match=r"conv2d_backward: expected dout of dtype float64, got "
                                        r"float32"):
        F.conv2d_backward(out.astype(np.float32), cache)


def test_kernels_refuse_a_bias_of_the_wrong_length():
    # the private kernels check what they index, so that no call from Python reads or writes
    # past a bias (or bias-gradient) array
    from fastres._kernels import _conv as k
    x = np.zeros((2, 16, 4, 4), np.float32)
    out = np.zeros((2, 16, 4, 4), np.float32)
    upk = np.zeros((16, 16 * 16), np.float32)
    scratch = np.zeros((1, 1 << 16), np.float32)
    with pytest.raises(ValueError, match="winograd_lanes_forward: expected a bias"):
        k.winograd_lanes_forward(x, upk, np.zeros(3, np.float32), None, False, out, scratch, 1,
                                 1, 1)
    x8, out8 = np.zeros((2, 16, 8, 8), np.float32), np.zeros((2, 16, 8, 8), np.float32)
    with pytest.raises(ValueError, match="winograd_forward: expected a bias"):
        k.winograd_forward(x8, upk, np.zeros(15, np.float32), None, False, None, out8, scratch,
                           1, 1, 1)
    with pytest.raises(ValueError, match="winograd_weight_grad: expected a bias"):
        k.winograd_weight_grad(x8, out8, np.zeros((16, 16, 3, 3), np.float32),
                               np.zeros(2, np.float32), np.zeros((16, 256), np.float32),
                               np.zeros((1, 4096), np.float32), np.zeros((1, 16), np.float32),
                               scratch, None, 1, 1, 1, False, 1)
