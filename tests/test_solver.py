"""fit/evaluate: files, exact resume (epoch boundary and Ctrl-C mid-epoch), early stopping,
non-finite loss. Tiny models and data keep this to a few seconds."""

import json
import os
import signal

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastres
from fastres.layers import BatchNorm2D, Conv2D, Dense, Dropout, GlobalAvgPool2D, ReLU, Sequential
from fastres.optim import SGD, Adam, OneCycle, ReduceLROnPlateau
from fastres.solver import NonFiniteLossError, evaluate, fit, read_checkpoint


def data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.random((n, 1, 6, 6), dtype=np.float32) * 0.5
    x[np.arange(n), 0, y, y] += 1.0  # learnable: a bright pixel per class
    return x, y


def tiny(seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(("conv", Conv2D(1, 4, 3, padding=1, rng=rng)), ("bn", BatchNorm2D(4)),
                      ("relu", ReLU()), ("drop", Dropout(0.2, seed=seed)),
                      ("pool", GlobalAvgPool2D()), ("fc", Dense(4, 3, rng=rng)))


def setup(kind="sgd", epochs=3):
    m = tiny()
    if kind == "sgd":
        opt = SGD(m.named_parameters(), 0.1, momentum=0.9, weight_decay=1e-4)
        sched = OneCycle(opt, epochs * 3)  # per-batch schedule
    else:
        opt = Adam(m.named_parameters(), 0.01)
        sched = ReduceLROnPlateau(opt, patience=0)
    return m, opt, sched


def run(out, epochs, resume=False, kind="sgd", total=3, **kw):
    m, opt, sched = setup(kind, total)
    x, y = data()
    h = fit(m, (x, y), data(12, 1), opt, sched, epochs=epochs, batch_size=16, seed=3,
            out_dir=out, resume=resume, progress=False, **kw)
    return m, h


@pytest.mark.parametrize("kind", ["sgd", "adam"])
def test_resume_is_bit_identical(tmp_path, kind):
    straight, h = run(tmp_path / "a", 3, kind=kind)
    run(tmp_path / "b", 1, kind=kind)
    resumed, h2 = run(tmp_path / "b", 3, resume=True, kind=kind)
    for k, v in straight.state_dict().items():
        assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    assert [r["train_loss"] for r in h] == [r["train_loss"] for r in h2]
    assert [r["lr"] for r in h] == [r["lr"] for r in h2]


def test_files_and_history(tmp_path):
    m, h = run(tmp_path, 2)
    assert len(h) == 2 and h.stop_reason == "completed"
    recs = json.loads((tmp_path / "history.json").read_text())
    assert [r["epoch"] for r in recs] == [1, 2]
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_top5", "lr",
                "seconds", "images_per_s"):
        assert key in recs[0]
    assert (tmp_path / "history.csv").read_text().startswith("epoch,train_loss")
    for f in ("checkpoint.npz", "best.npz", "final.npz"):
        assert (tmp_path / f).exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    with np.load(tmp_path / "checkpoint.npz", allow_pickle=False) as z:
        assert "__checkpoint__" in z.files
    c = read_checkpoint(tmp_path / "checkpoint.npz")
    assert c["epoch"] == 2 and c["batch"] == 0
    final = fastres.load(tmp_path / "final.npz", tiny(1))
    assert_array_equal(final.fc.weight.data, m.fc.weight.data)
    # never overwrite a run by accident
    with pytest.raises(FileExistsError, match="fit: .*checkpoint.npz already exists"):
        run(tmp_path, 2)


def test_ctrl_c_saves_and_resumes_exactly(tmp_path):
    straight, h = run(tmp_path / "a", 3)
    m, opt, sched = setup("sgd", 3)
    calls = [0]
    inner = m.forward

    def forward(x):
        if m.training:
            calls[0] += 1
            if calls[0] == 5:  # epoch 2, batch 2
                os.kill(os.getpid(), signal.SIGINT)
        return inner(x)

    m.forward = forward
    with pytest.raises(KeyboardInterrupt, match="checkpoint saved"):
        fit(m, data(), data(12, 1), opt, sched, epochs=3, batch_size=16, seed=3,
            out_dir=tmp_path / "b", progress=False)
    c = read_checkpoint(tmp_path / "b" / "checkpoint.npz")
    assert (c["epoch"], c["batch"]) == (1, 2)
    resumed, h2 = run(tmp_path / "b", 3, resume=True)
    for k, v in straight.state_dict().items():
        assert_array_equal(resumed.state_dict()[k], v, err_msg=k)
    # the resumed epoch records the rate it started with, not the one at the resume point
    # (OneCycle changes it every batch)
    assert h2.column("lr") == h.column("lr")


def test_non_finite_loss_keeps_checkpoint(tmp_path):
    m, opt, _ = setup()
    calls = [0]
    inner = m.forward

    def forward(x):
        out = inner(x)
        if m.training:
            calls[0] += 1
            if calls[0] == 4:  # epoch 2, batch 1
                out = out * np.float32("nan")
        return out

    m.forward = forward
    with pytest.raises(NonFiniteLossError, match=r"became nan at epoch 2, batch 1; the last good"):
        fit(m, data(), None, opt, epochs=3, batch_size=16, out_dir=tmp_path, progress=False)
    c = read_checkpoint(tmp_path / "checkpoint.npz")
    assert c["epoch"] == 1 and len(c["history"]) == 1
    assert all(np.isfinite(v).all() for v in c["model"].values())


def test_read_checkpoint_refuses_malformed_files(tmp_path):
    p = tmp_path / "c.npz"
    for meta, message in [(b"[]", "malformed '__checkpoint__' record: expected a JSON object"),
                          (b'{"format": 1, "model": {"__array__": "nope"}}',
                           "refers to an array 'nope' it does not hold")]:
        np.savez(p, __checkpoint__=np.frombuffer(meta, np.uint8))
        with pytest.raises(ValueError, match=f"read_checkpoint: .*c.npz.* {message}"):
            read_checkpoint(p)
    p.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="read_checkpoint: .* is not a readable fastres file"):
        read_checkpoint(p)
    # a readable checkpoint file that fit() did not write: refused by name, not a KeyError
    np.savez(tmp_path / "checkpoint.npz", __checkpoint__=np.frombuffer(b'{"format": 1}', np.uint8))
    m = tiny()
    with pytest.raises(ValueError, match="fit: cannot resume .* it is not a fit.. checkpoint "
                                         r"\(missing \['bad_epochs'"):
        fit(m, data(), None, SGD(m.parameters(), 0.1), epochs=1, batch_size=16,
            out_dir=tmp_path, resume=True, progress=False)


def test_early_stopping(tmp_path):
    m = tiny()
    opt = SGD(m.parameters(), 0.0)  # never improves after the first epoch
    h = fit(m, data(), data(12, 1), opt, epochs=10, batch_size=16, early_stopping=2,
            progress=False)
    assert len(h) == 3 and h.stop_reason == "early_stopping"
    # a run that stopped early has stopped: resuming it trains no further epoch
    m, opt = tiny(), None
    opt = SGD(m.parameters(), 0.0)
    fit(m, data(), data(12, 1), opt, epochs=10, batch_size=16, early_stopping=2,
        out_dir=tmp_path, progress=False)
    m = tiny()
    h = fit(m, data(), data(12, 1), SGD(m.parameters(), 0.0), epochs=10, batch_size=16,
            early_stopping=2, out_dir=tmp_path, resume=True, progress=False)
    assert len(h) == 3 and h.stop_reason == "early_stopping"


def test_evaluate_and_errors():
    m = tiny()
    x, y = data()
    r = evaluate(m, x, y, batch_size=7)
    assert set(r) == {"loss", "top1", "top5"} and r["top5"] == 1.0 and m.training
    opt = SGD(m.parameters(), 0.1)
    with pytest.raises(ValueError, match="fit: expected epochs to be an int >= 1"):
        fit(m, (x, y), None, opt, epochs=0, batch_size=4)
    with pytest.raises(TypeError, match="fit: expected train as an .x, y. pair"):
        fit(m, x, None, opt, epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="fit: expected train labels"):
        fit(m, (x, y[:3]), None, opt, epochs=1, batch_size=4)
    with pytest.raises(TypeError, match="fit: expected a fastres.optim optimizer"):
        fit(m, (x, y), None, object(), epochs=1, batch_size=4)
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        fit(m, (x, y), None, opt, epochs=1, batch_size=4, resume=True)
    with pytest.raises(ValueError, match=r"fit: expected label_smoothing in \[0, 1\], got 'a'"):
        fit(m, (x, y), None, opt, epochs=1, batch_size=4, label_smoothing="a")
    with pytest.raises(ValueError, match="fit: 6 of the optimizer's parameters are not the "
                                         "model's"):
        fit(m, (x, y), None, SGD(tiny().parameters(), 0.1), epochs=1, batch_size=4)
    # a NumPy int batch size, above evaluate's 256 (the validation batch is the larger)
    h = fit(m, (x, y), (x, y), opt, epochs=1, batch_size=np.int64(300), progress=False)
    assert len(h) == 1
