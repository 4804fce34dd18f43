"""Model builders: published parameter and MAC counts, output shapes, whole-model gradient checks
(float64, real kernels), seeding, save/load, eval-mode behaviour, fused inference, overfitting."""

import os

import numpy as np
import pytest

import fastres
import fastres.functional as F
from fastres import io
from fastres.gradcheck import directional_check, rel_error
from fastres.layers import deferred_init
from fastres.models import (
    Bottleneck,
    minimodel,
    plain_cifar,
    resnet,
    resnet18,
    resnet20,
    resnet32,
    resnet34,
    resnet44,
    resnet50,
    resnet56,
    resnet101,
    resnet110,
    resnet152,
    resnet_cifar,
    resnext,
    resnext29_8x64d,
    wide_resnet,
)

F64 = np.float64


@pytest.mark.parametrize("builder, shortcut, expected", [
    (resnet20, "A", 269_722),  # 0.27M (He et al. 2015, table 6)
    (resnet20, "B", 272_474),  # + 1x1 projections and their BN
    (resnet32, "A", 464_154),  # 0.46M
    (resnet44, "A", 658_586),  # 0.66M
    (resnet56, "A", 853_018),  # 0.85M
    (resnet110, "A", 1_727_962),  # 1.7M
])
def test_cifar_parameter_counts(builder, shortcut, expected):
    with deferred_init():
        assert builder(shortcut=shortcut).num_parameters() == expected


@pytest.mark.parametrize("builder, expected", [
    (resnet18, 11_689_512), (resnet34, 21_797_672), (resnet50, 25_557_032),
    (resnet101, 44_549_160), (resnet152, 60_192_808),
])
def test_imagenet_parameter_counts_match_torchvision(builder, expected):
    with deferred_init():  # counts from the shapes; no weight initialisation
        assert builder().num_parameters() == expected


def test_half_width_resnet32_for_mnist():
    # base_width 8, 1 input channel: conv1 72 + bn 16; stage 1: 5 x (2*576 + 32) = 5920;
    # stage 2: (1152 + 2304 + 64) + 4 x (2*2304 + 64) = 22208; stage 3: (4608 + 9216 + 128)
    # + 4 x (2*9216 + 128) = 88192; fc 32*10 + 10 = 330.
    with deferred_init():
        m = resnet_cifar(32, base_width=8, in_channels=1)
        assert m.num_parameters() == 72 + 16 + 5920 + 22208 + 88192 + 330
        assert plain_cifar(32, base_width=8).fc.weight.data.shape[1] == 32


def test_wide_and_resnext_parameter_counts():
    with deferred_init():
        assert wide_resnet(28, 10).num_parameters() == 36_479_194  # WRN-28-10: 36.5M
        assert resnext29_8x64d().num_parameters() == 34_426_698  # ResNeXt-29 8x64d: 34.4M


def test_resnet20_macs_and_summary(capsys):
    m = resnet20()
    assert m.total_macs((3, 32, 32)) == 40_551_040  # the published 40.6M
    text = m.summary((3, 32, 32))
    assert "stage2.0.shortcut" in text and "269,722" in text and "40.6M" in text
    assert text in capsys.readouterr().out
    with deferred_init():
        assert abs(resnet50().total_macs((3, 224, 224)) / 1e9 - 4.09) < 0.01


@pytest.mark.parametrize("make, shape, out", [
    (lambda: resnet_cifar(8), (2, 3, 32, 32), (2, 10)),
    (lambda: resnet_cifar(8, in_channels=1, num_classes=7), (2, 1, 28, 28), (2, 7)),
    (lambda: resnet_cifar(8, shortcut="B", width=2), (1, 3, 17, 17), (1, 10)),
    (lambda: resnet_cifar(8, preact=True, stochastic_depth=0.5), (2, 3, 32, 32), (2, 10)),
    (lambda: plain_cifar(8), (2, 3, 32, 32), (2, 10)),
    (lambda: wide_resnet(10, 2, dropout=0.3), (2, 3, 32, 32), (2, 10)),
    (lambda: resnext(11, 2, 4, widen_factor=1), (2, 3, 16, 16), (2, 10)),
    (lambda: minimodel(base_filters=4, units_per_stage=1), (2, 3, 32, 32), (2, 10)),
    (lambda: resnet18(num_classes=5), (1, 3, 32, 32), (1, 5)),
    (lambda: resnet50(num_classes=5), (1, 3, 32, 32), (1, 5)),
    (lambda: resnet(101, num_classes=3, groups=32, width_per_group=4), (1, 3, 40, 33), (1, 3)),
])
def test_output_shapes(make, shape, out):
    with deferred_init():
        m = make()
    m.eval()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = m.forward(x)
    assert y.shape == out and y.dtype == np.float32
    assert m.output_shape(shape[1:]) == out[1:]


def test_builder_shapes_without_running():
    with deferred_init():
        assert resnet152().output_shape((3, 224, 224)) == (1000,)
        assert resnet34().output_shape((3, 32, 32)) == (1000,)


def whole_model_check(model, x, *, train=True, tol=1e-6, eps=1e-7):
    # Every parameter moves along its own random direction, so the total step is large; a small
    # eps keeps the central difference away from ReLU / max-pool kinks.
    model.train(train)
    y = model.forward(x)
    dout = np.random.default_rng(1).standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(dout)
    params = list(model.parameters())
    err_x = directional_check(lambda: model.forward(x), [x], [dx], dout, eps=eps)
    err_all = directional_check(lambda: model.forward(x), [x] + [p.data for p in params],
                                [dx] + [p.grad.copy() for p in params], dout, eps=eps)
    assert err_x < tol and err_all < tol, (err_x, err_all)


X8 = np.random.default_rng(7).standard_normal((2, 3, 8, 8))


@pytest.mark.parametrize("make", [
    lambda: resnet_cifar(8, shortcut="A", dtype=F64),
    lambda: resnet_cifar(8, shortcut="B", dtype=F64),
    lambda: resnet_cifar(8, preact=True, dtype=F64),
    lambda: resnet_cifar(8, preact=True, shortcut="B", dtype=F64),
    lambda: plain_cifar(8, dtype=F64),
    lambda: wide_resnet(10, 1, dtype=F64),
], ids=["resnet8-A", "resnet8-B", "preact-A", "preact-B", "plain8", "wrn-10-1"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_whole_model_gradients(make, train):
    whole_model_check(make(), X8.copy(), train=train)


@pytest.mark.parametrize("groups", [1, 4], ids=["bottleneck", "resnext-block"])
@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_block_gradients(groups, stride):
    block = Bottleneck(8, 8, 16, stride, groups=groups, dtype=F64)
    block.reset_parameters(np.random.default_rng(3))
    whole_model_check(block, np.random.default_rng(4).standard_normal((2, 8, 6, 6)))


def test_resnext_model_gradients():
    x = np.random.default_rng(5).standard_normal((2, 3, 8, 8))
    whole_model_check(resnext(11, 2, 2, widen_factor=1, num_classes=4, dtype=F64, seed=1), x)


def test_minimodel_gradients():
    m = minimodel(base_filters=4, units_per_stage=1, dropout=0.0, dtype=F64)
    x = np.random.default_rng(6).standard_normal((2, 3, 32, 32))
    whole_model_check(m, x, tol=1e-5)  # max pooling kinks make this a little noisier


def test_stochastic_depth_gradients_and_eval_scaling():
    m = resnet_cifar(8, stochastic_depth=0.5, dtype=F64)
    blocks = [b for s in (m.stage1, m.stage2, m.stage3) for b in s]
    # linear decay to p_L = 0.5 over L = 3 blocks
    np.testing.assert_allclose([b.drop_path.survival_prob for b in blocks], [5 / 6, 4 / 6, 0.5])
    # make the training-mode draw repeatable for the finite differences
    states = [b.drop_path.rng.bit_generator.state for b in blocks]

    def reseed():
        for b, st in zip(blocks, states):
            b.drop_path.rng.bit_generator.state = st

    x = X8.copy()
    orig = m.forward
    m.forward = lambda x: (reseed(), orig(x))[1]
    whole_model_check(m, x)
    m.forward = orig
    whole_model_check(m, x, train=False)


def test_same_seed_same_weights():
    a, b, c = resnet_cifar(8, seed=3), resnet_cifar(8, seed=3), resnet_cifar(8, seed=4)
    for (n, p), (_, q), (_, r) in zip(a.named_parameters(), b.named_parameters(),
                                      c.named_parameters()):
        np.testing.assert_array_equal(p.data, q.data)
        if n.endswith("conv1.weight"):
            assert not np.array_equal(p.data, r.data)
    assert resnet_cifar(8, dtype=F64).conv1.weight.dtype == F64


def test_builder_errors():
    with pytest.raises(ValueError, match="resnet_cifar: expected depth = 6n \\+ 2.*got 21"):
        resnet_cifar(21)
    with pytest.raises(ValueError, match="shortcut 'A' or 'B', got 'C'"):
        resnet_cifar(8, shortcut="C")
    with pytest.raises(ValueError, match=r"depth in \[18, 34, 50, 101, 152\], got 42"):
        resnet(42)
    with pytest.raises(ValueError, match="survival probability"):
        resnet_cifar(8, stochastic_depth=1.5)


def trained_resnet8():
    m = resnet_cifar(8, seed=1)
    x = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    for _ in range(3):  # give BN non-trivial running statistics
        m.forward(x)
    return m


def test_save_load_round_trip(tmp_path):
    m = trained_resnet8()
    path = tmp_path / "model.npz"
    io.save(m, path)
    assert os.listdir(tmp_path) == ["model.npz"]  # no temporary file left behind
    with np.load(path, allow_pickle=False) as z:
        assert "stage2.0.bn1.running_var" in z.files
    m2 = io.load(path)
    assert m2.arch == m.arch
    x = np.random.default_rng(1).standard_normal((3, 3, 16, 16)).astype(np.float32)
    m.eval()
    m2.eval()
    np.testing.assert_array_equal(m.forward(x), m2.forward(x))


def test_load_mismatch_names_key_and_shapes(tmp_path):
    path = tmp_path / "m.npz"
    io.save(resnet_cifar(8, num_classes=10), path)
    with pytest.raises(ValueError, match=r"'fc.weight'.*\(7, 64\).*\(10, 64\)"):
        io.load(path, resnet_cifar(8, num_classes=7))
    with pytest.raises(ValueError, match="unexpected key 'stage1.0.downsample"):
        io.load(_with_extra_key(tmp_path), resnet_cifar(8))
    with pytest.raises(ValueError, match="holds no architecture"):
        io.load(_with_extra_key(tmp_path))


def _file(tmp_path, meta: bytes, **arrays):
    p = tmp_path / "m.npz"
    np.savez(p, **arrays, __fastres__=np.frombuffer(meta, np.uint8))
    return p


@pytest.mark.parametrize("meta, message", [
    (b"[1, 2]", "malformed '__fastres__' record: expected a JSON object, got list"),
    (b"{bad", "malformed '__fastres__' record: Expecting property name"),
    (b"\xff\xfe", "malformed '__fastres__' record: 'utf-8' codec can't decode"),
    (b'{"format": 1, "arch": [1]}', r"malformed architecture \[1\]"),
    (b'{"format": 1, "arch": {"builder": "resnet_cifar", "kwargs": [20]}}',
     "malformed architecture"),
    (b'{"format": 1, "arch": {"builder": ["resnet_cifar"]}}', "unknown builder"),
    (b'{"format": 1, "arch": {"builder": "resnet_cifar", "kwargs": {"nope": 1}}}',
     "does not build: .*nope"),
    # a million-block network asked for by a file with no arrays: refused before it is built
    (b'{"format": 1, "arch": {"builder": "resnet_cifar", "kwargs": {"depth": 6000002}}}',
     "has more parameters than the file's 0 arrays of 0 elements hold"),
])
def test_load_refuses_malformed_files(tmp_path, meta, message):
    with pytest.raises(ValueError, match=f"load: .*m.npz.* {message}"):
        io.load(_file(tmp_path, meta))


def test_load_refuses_what_is_not_an_archive(tmp_path):
    empty, truncated, single = tmp_path / "e.npz", tmp_path / "t.npz", tmp_path / "s.npy"
    empty.write_bytes(b"")
    io.save(resnet_cifar(8), truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    np.save(single, np.zeros(3))
    for path in (empty, truncated, single):
        with pytest.raises(ValueError, match=f"load: '{path}' is not a readable fastres file"):
            io.load(path)
    with pytest.raises(FileNotFoundError):
        io.load(tmp_path / "missing.npz")


def _with_extra_key(tmp_path):
    p = tmp_path / "extra.npz"
    sd = resnet_cifar(8).state_dict()
    sd["stage1.0.downsample.0.weight"] = np.zeros((16, 16, 1, 1), np.float32)
    with open(p, "wb") as f:
        np.savez(f, **sd, __fastres__=np.frombuffer(b'{"format": 1, "arch": null}', np.uint8))
    return p


def test_eval_output_independent_of_batch_composition():
    m = trained_resnet8()
    m.eval()
    x = np.random.default_rng(2).standard_normal((6, 3, 16, 16)).astype(np.float32)
    full = m.forward(x)
    alone = np.concatenate([m.forward(x[i:i + 1]) for i in range(6)])
    np.testing.assert_allclose(full, alone, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.forward(x[::-1])[::-1], full, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: trained_resnet8(),
    lambda: minimodel(base_filters=4, units_per_stage=2),
    lambda: resnet_cifar(8, preact=True, shortcut="B"),
])
def test_fused_inference_equals_unfused(make):
    m = make()
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    m.train()
    m.forward(x)  # non-trivial running statistics
    m.eval()
    fused = m.forward(x)
    for mod in m.modules():
        if hasattr(mod, "fuse"):
            mod.fuse = False
    unfused = m.forward(x)
    assert rel_error(fused, unfused) < 1e-5


def _training_step(m, x, y) -> list:
    """Logits, input gradient, every parameter gradient and running statistic of one step."""
    m.train()
    logits = m.forward(x)
    _, dlogits = F.softmax_cross_entropy(logits, y)
    m.zero_grad()
    dx = m.backward(dlogits)
    return ([logits, dx] + [p.grad.copy() for p in m.parameters()]
            + [b.copy() for _, b in m.named_buffers()])


@pytest.mark.parametrize("make", [
    lambda: resnet_cifar(8),
    lambda: resnet_cifar(8, shortcut="B", preact=True),
    lambda: minimodel(base_filters=4, units_per_stage=2),
    lambda: resnext(11, 2, 4, widen_factor=1),
], ids=["resnet8", "preact-B", "minimodel", "resnext"])
def test_fused_training_step_is_bit_identical(make):
    # training fusion (BN + add + ReLU in one pass, ReLU gradients applied in the conv's dx)
    # changes no number: logits, input gradient, every parameter gradient, running statistics
    x = np.random.default_rng(3).standard_normal((4, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 0, 3, 9])
    runs = []
    for fuse in (True, False):
        m = make()
        for mod in m.modules():
            if hasattr(mod, "fuse"):
                mod.fuse = fuse
        runs.append(_training_step(m, x, y))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("make", [
    lambda: resnet_cifar(8),
    lambda: minimodel(base_filters=16, units_per_stage=1),
], ids=["resnet8", "minimodel"])
def test_training_step_is_thread_invariant(make):
    # a whole fused training step (Winograd, stride-2 and fused kernels, gradient fan-in sums)
    # gives the same bits on 1 and 2 threads
    x = np.random.default_rng(3).standard_normal((8, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 0, 3, 9, 2, 2, 7, 5])
    runs, before = [], fastres.get_num_threads()
    try:
        for threads in (1, 2):
            fastres.set_num_threads(threads)
            runs.append(_training_step(make(), x, y))
    finally:
        fastres.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_overfit_64_random_samples():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    m = resnet_cifar(8, seed=0)
    velocity = [np.zeros_like(p.data) for p in m.parameters()]
    lr, momentum = 0.3, 0.9
    for _ in range(20):
        m.zero_grad()
        loss, dlogits = F.softmax_cross_entropy(m.forward(x), y)
        m.backward(dlogits)
        for p, v in zip(m.parameters(), velocity):  # SGD with momentum (PyTorch form)
            v *= momentum
            v += p.grad
            p.data -= lr * v
    assert loss < 0.05
