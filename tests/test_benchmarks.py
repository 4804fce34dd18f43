"""The benchmark scripts run (a tiny configuration; speed itself is never asserted in tests)."""

import gc
import json

import pytest

from benchmarks import bench_ops
from benchmarks._common import median_ms, no_gc


def test_bench_ops_runs_and_writes_json(tmp_path, capsys):
    path = tmp_path / "ops.json"
    bench_ops.main(["--only", "linear", "--batch", "4", "--repeats", "1", "--ref-repeats", "1",
                    "--json", str(path)])
    out = capsys.readouterr().out
    assert "| linear |" in out.replace("  ", "") and "floor: linear" in out
    data = json.loads(path.read_text())
    (row,) = data["results"]
    assert row["op"] == "linear" and row["fwd_ms"] > 0 and row["speedup_vs_ref"] > 0
    (floor,) = data["floors"]
    assert floor["floor_ms"] > 0 and floor["budget_ms"] == row["ref_ms"] / 10


def test_bench_ops_only_takes_several_ops_and_refuses_none(tmp_path, capsys):
    bench_ops.main(["--only", "relu, softmax", "--batch", "4", "--repeats", "1",
                    "--ref-repeats", "1", "--json", str(tmp_path / "ops.json")])
    ops = [r["op"] for r in json.loads((tmp_path / "ops.json").read_text())["results"]]
    assert ops == ["relu", "softmax cross-entropy"]
    with pytest.raises(SystemExit, match="matches no op; the ops are: conv3x3 s1, "):
        bench_ops.main(["--only", "nothing", "--batch", "4", "--repeats", "1"])


def test_timing_turns_the_collector_off_and_back():
    seen = []
    median_ms(lambda: seen.append(gc.isenabled()), 2, warmup=0)
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        with no_gc():
            pass
        assert not gc.isenabled()  # left as it was found
    finally:
        gc.enable()


def test_bench_train_runs(tmp_path):
    from benchmarks import bench_train

    path = tmp_path / "train.json"
    (row,) = bench_train.run(["resnet20"], [1], 2, 1, False, str(path))
    assert row["model"] == "resnet20" and row["train_img_s"] > 0 and row["infer_img_s"] > 0
    assert json.loads(path.read_text())["results"][0]["batch"] == 2


def test_bench_train_optim_table_runs(capsys):
    from benchmarks import bench_train

    (row,) = bench_train.optim_table(["resnet20"], 1, 1)
    assert 0.265e6 < row["params"] < 0.275e6  # ResNet-20: 0.27M parameters (He et al. 2016)
    assert all(row[k] > 0 for k in ("sgd_ms", "sgd_numpy_ms", "adam_ms", "adam_numpy_ms"))
    assert "one optimizer step" in capsys.readouterr().out
