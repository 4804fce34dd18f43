"""The fastres command line, on a tiny synthetic dataset (patched in) so each run takes ~1 s."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastres
from fastres import cli


class _DS:
    name, classes = "synthetic", ["a", "b", "c"]


@pytest.fixture
def tiny_data(monkeypatch):
    rng = np.random.default_rng(0)
    ds = _DS()
    ds.y_train, ds.y_test = rng.integers(0, 3, 40), rng.integers(0, 3, 12)
    ds.x_train = rng.random((40, 1, 8, 8), dtype=np.float32)
    ds.x_test = rng.random((12, 1, 8, 8), dtype=np.float32)
    ds.y_val = None

    def load(name, data_dir, val_split, seed):
        return ds, ds.x_train, None, ds.x_test
    monkeypatch.setattr(cli, "_load_data", load)
    return ds


ARGS = ["train", "--dataset", "synthetic", "--batch-size", "16", "--threads", "1"]


def test_train_writes_outputs_and_resumes_exactly(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--epochs", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "test accuracy: top-1" in text
    recs = json.loads((out / "history.json").read_text())
    for key in ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"):
        assert key in recs[0]
    for f in ("checkpoint.npz", "final.npz", "best.npz"):
        assert (out / f).exists()
    # 1 epoch + resume to 2 == 2 epochs straight (schedule: cosine over the --epochs given)
    straight = tmp_path / "straight"
    common = [*ARGS, "--schedule", "step", "--epochs", "2"]
    assert cli.main([*common, "--out", str(straight)]) == 0
    part = tmp_path / "part"
    assert cli.main([*ARGS, "--schedule", "step", "--epochs", "1", "--out", str(part)]) == 0
    assert cli.main([*common, "--out", str(part), "--resume"]) == 0
    a = fastres.load(straight / "final.npz").state_dict()
    b = fastres.load(part / "final.npz").state_dict()
    for k in a:
        assert_array_equal(a[k], b[k], err_msg=k)


def test_test_each_epoch_records_the_test_set_as_validation(tiny_data, tmp_path):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--epochs", "2", "--test-each-epoch", "--out", str(out)]) == 0
    recs = json.loads((out / "history.json").read_text())
    test = json.loads((out / "test.json").read_text())
    # the last epoch's validation columns are the final model on the test set
    assert recs[-1]["val_acc"] == pytest.approx(test["top1"])
    assert recs[-1]["val_loss"] == pytest.approx(test["loss"], rel=1e-6)
    assert cli.main([*ARGS, "--epochs", "1", "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "history.json").read_text())
    assert plain[0]["val_acc"] is None


def test_evaluate_prints_accuracy(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--epochs", "1", "--optimizer", "adam", "--out", str(out)]) == 0
    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "final.npz"), "--dataset", "synthetic"]) == 0
    assert "top-1" in capsys.readouterr().out


@pytest.mark.parametrize("argv,msg", [
    (["train", "--epochs", "0"], "expected a positive integer"),
    (["train", "--optimizer", "sgdx"], "invalid choice"),
    (["train", "--val-split", "1.5"], "expected a fraction"),
    (["train", "--resume"], "--resume needs --out"),
    (["evaluate", "missing.npz"], "no such model file"),
])
def test_bad_arguments(argv, msg, capsys):
    try:
        rc = cli.main(argv)
    except SystemExit as exc:
        rc = exc.code
    assert rc == 2
    assert msg in capsys.readouterr().err


def test_refuses_to_overwrite_a_run(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main([*ARGS, "--epochs", "1", "--out", str(out)]) == 0
    assert cli.main([*ARGS, "--epochs", "1", "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_an_unusable_out_folder_is_an_error_not_a_traceback(tiny_data, tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert cli.main([*ARGS, "--epochs", "1", "--out", str(tmp_path / "file" / "run")]) == 2
    assert "fastres: error:" in capsys.readouterr().err


def test_python_m_fastres_help(tmp_path):
    # run outside the source tree, as a user would (the tree itself has no compiled kernels),
    # with the import path pytest sees so an in-place development build works too
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    r = subprocess.run([sys.executable, "-m", "fastres", "train", "--help"], cwd=tmp_path,
                       env=env, check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--optimizer" in r.stdout and "--resume" in r.stdout
