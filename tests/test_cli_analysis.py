"""The figure and inspection commands of the CLI (plot, saliency, fool, summary) on two tiny runs
trained on a slice of the embedded MNIST subset."""

import re

import numpy as np
import pytest

import fastres
from fastres import cli, models, optim
from fastres.analysis import fooling_image
from fastres.solver import fit

mpl_image = pytest.importorskip("matplotlib.image")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two runs (ResNet-8 and its plain twin, 1 input channel) of 2 epochs on 256 embedded
    training images, validated on 128 test images: history.json, best.npz, final.npz."""
    fastres.set_num_threads(1)
    ds, x_train, _, x_test = cli._load_data("embedded", None, 0.0, 0)
    out = []
    for name, build in (("resnet8", models.resnet_cifar), ("plain8", models.plain_cifar)):
        model = build(8, in_channels=1, seed=0)
        opt = optim.SGD(model.named_parameters(), 0.05, momentum=0.9)
        d = tmp_path_factory.mktemp(name)
        fit(model, (x_train[:256], ds.y_train[:256]), (x_test[:128], ds.y_test[:128]), opt,
            epochs=2, batch_size=64, out_dir=d, progress=False)
        out.append(d)
    fastres.set_num_threads(None)
    return out


def png_size(path):
    assert path.stat().st_size > 0
    h, w = mpl_image.imread(path).shape[:2]
    return w, h


def test_plot(runs, tmp_path, capsys):
    out = tmp_path / "curves.png"
    rc = cli.main(["plot", *map(str, runs), "--out", str(out), "--title", "plain vs residual",
                   "--labels", "ResNet-8,plain-8", "--size", "640x400"])
    assert rc == 0
    assert png_size(out) == (640, 400)
    assert f"learning curves of 2 run(s) written to {out}" in capsys.readouterr().out
    assert cli.main(["plot", str(runs[0]), "--out", str(tmp_path / "one.png")]) == 0
    assert png_size(tmp_path / "one.png") == (800, 500)


def test_saliency(runs, tmp_path, capsys):
    out = tmp_path / "saliency.png"
    rc = cli.main(["saliency", str(runs[0] / "final.npz"), "--dataset", "embedded", "--n", "3",
                   "--out", str(out)])
    assert rc == 0
    assert png_size(out) == (390, 300)
    assert "saliency maps of 3 embedded test images" in capsys.readouterr().out


def test_fool_prints_iterations_and_change(runs, tmp_path, capsys):
    model_path = runs[0] / "final.npz"
    out = tmp_path / "fool.png"
    rc = cli.main(["fool", str(model_path), "--dataset", "embedded", "--target", "3", "--n", "2",
                   "--objective", "log_prob", "--max-iter", "300", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    lines = [s for s in text.splitlines() if s.startswith("test image")]
    assert len(lines) == 2
    # the first two test images that are not 3s, pushed to 3; the printed numbers are those of
    # the library call
    ds, _, _, x_test = cli._load_data("embedded", None, 0.0, 0)
    first = np.flatnonzero(ds.y_test != 3)[0]
    r = fooling_image(fastres.load(model_path), x_test[first], 3, objective="log_prob",
                      max_iter=300)
    m = re.search(rf"test image #{first} \(true \d\), predicted \d -> 3 \(p=[\d.]+\) in "
                  r"(\d+) iterations; change L2 ([\d.]+), Linf ([\d.]+)", lines[0])
    assert m, lines[0]
    assert int(m[1]) == r.iterations
    assert float(m[2]) == pytest.approx(r.l2, abs=1e-3)
    assert float(m[3]) == pytest.approx(r.linf, abs=1e-3)
    assert png_size(out) == (420, 280)  # 2 rows of 140 px
    rc = cli.main(["fool", str(model_path), "--target", "7", "--n", "1", "--from-noise",
                   "--objective", "log_prob", "--max-iter", "300", "--out", str(out)])
    assert rc == 0 and "noise 0, predicted" in capsys.readouterr().out


def test_fool_failures(runs, tmp_path, capsys):
    model_path = str(runs[0] / "final.npz")
    out = tmp_path / "x.png"
    rc = cli.main(["fool", model_path, "--target", "3", "--n", "1", "--max-iter", "1",
                   "--step-size", "1e-6", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and not out.exists()
    assert "FAILED: fooling_image: the prediction is still class" in err
    assert "no image reached class 3" in err
    assert cli.main(["fool", model_path, "--target", "cat", "--out", str(out)]) == 2
    assert "--target 'cat' is not a class of embedded" in capsys.readouterr().err
    assert cli.main(["fool", str(tmp_path / "none.npz"), "--target", "1", "--out",
                     str(out)]) == 2
    assert "fool: no such model file" in capsys.readouterr().err


def test_plot_errors(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path), "--out", str(tmp_path / "c.png")]) == 2
    assert f"plot: no history.json in {tmp_path}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["plot", str(tmp_path), "--out", "c.png", "--size", "800"])
    assert "expected WIDTHxHEIGHT in pixels" in capsys.readouterr().err


def total_params(text):
    return int(re.search(r"total params: ([\d,]+)", text)[1].replace(",", ""))


def test_summary(runs, capsys):
    assert cli.main(["summary", "resnet20"]) == 0
    text = capsys.readouterr().out
    assert total_params(text) == 269_722  # 0.27M, He et al. (2015) table 6
    assert "per 3x32x32 input" in text and "stage3" in text
    assert cli.main(["summary", "plain20"]) == 0  # option-A shortcuts add no parameters
    assert total_params(capsys.readouterr().out) == 269_722
    assert cli.main(["summary", "resnet18"]) == 0
    text = capsys.readouterr().out
    assert total_params(text) == 11_689_512 and "per 3x224x224 input" in text
    macs = int(re.search(r"total MACs: ([\d,]+)", text)[1].replace(",", ""))
    assert 1.80e9 < macs < 1.83e9  # 1.8 GFLOPs in He et al. (2015) table 1
    assert cli.main(["summary", str(runs[1] / "final.npz"), "--image-size", "28"]) == 0
    text = capsys.readouterr().out
    assert "per 1x28x28 input" in text
    assert total_params(text) == fastres.load(runs[1] / "final.npz").num_parameters()
    assert cli.main(["summary", "resnet21"]) == 2
    assert "summary: unknown model 'resnet21'" in capsys.readouterr().err


def test_train_accepts_plain_models(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)

    class DS:
        name, classes = "synthetic", ["a", "b"]
        y_train, y_test, y_val = rng.integers(0, 2, 16), rng.integers(0, 2, 8), None
        x_train = rng.random((16, 1, 8, 8), dtype=np.float32)
        x_test = rng.random((8, 1, 8, 8), dtype=np.float32)

    monkeypatch.setattr(cli, "_load_data", lambda *a: (DS, DS.x_train, None, DS.x_test))
    rc = cli.main(["train", "--model", "plain14", "--epochs", "1", "--batch-size", "8",
                   "--out", str(tmp_path / "p")])
    assert rc == 0
    assert fastres.load(tmp_path / "p" / "final.npz").arch["builder"] == "plain_cifar"


def test_help_texts(capsys):
    for cmd, words in (("plot", "He et al. (2015)"), ("saliency", "Simonyan"),
                       ("fool", "--from-noise"), ("summary", "multiply-adds")):
        with pytest.raises(SystemExit) as exc:
            cli.main([cmd, "--help"])
        assert exc.value.code == 0
        assert words in capsys.readouterr().out
