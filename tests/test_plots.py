"""fastres.plots: every figure is a PNG of exactly the requested pixel size, draws what it was
given, rejects bad input, and says how to install matplotlib when it is missing."""

import importlib
import sys

import numpy as np
import pytest

from fastres import analysis
from fastres.metrics import confusion_matrix
from fastres.models import resnet_cifar
from fastres.solver import History

mpl_image = pytest.importorskip("matplotlib.image")
plots = importlib.import_module("fastres.plots")

C0, C1, C2 = (31, 119, 180), (255, 127, 14), (44, 160, 44)  # matplotlib's first three colours


pytestmark = pytest.mark.usefixtures("one_thread")


def read_png(path, size):
    """The image as uint8 RGB, after checking the file and its size (width, height)."""
    assert path.exists() and path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpl_image.imread(path)
    assert img.shape[:2] == (size[1], size[0])
    return np.round(img[..., :3] * 255).astype(np.uint8)


def count(img, rgb, tol=12):
    return int(np.sum(np.all(np.abs(img.astype(int) - rgb) <= tol, axis=-1)))


def records(train_acc, val_acc=None):
    return [{"epoch": i + 1, "train_loss": 1.0, "train_acc": a, "val_loss": None,
             "val_acc": None if val_acc is None else val_acc[i], "val_top5": None, "lr": 0.1,
             "seconds": 1.0, "images_per_s": 1.0} for i, a in enumerate(train_acc)]


@pytest.fixture
def run_dirs(tmp_path):
    out = []
    for name, tr, va in (("plain", [0.3, 0.5, 0.6, 0.65], [0.3, 0.45, 0.5, 0.55]),
                         ("resnet", [0.4, 0.7, 0.8, 0.9], None)):
        d = tmp_path / name
        d.mkdir()
        (d / "history.json").write_text(History(records(tr, va)).to_json())
        out.append(d)
    return out


# ---- learning curves ---------------------------------------------------------------------------
def test_learning_curves_size_and_one_colour_per_run(run_dirs, tmp_path):
    path = plots.learning_curves([str(d) for d in run_dirs], tmp_path / "c.png", title="t",
                                 size=(640, 400), dpi=80)
    img = read_png(path, (640, 400))
    assert count(img, C0) > 100 and count(img, C1) > 100  # two runs drawn ...
    assert count(img, C2) == 0  # ... and no third


def test_learning_curves_accepts_histories_columns_and_names(run_dirs, tmp_path):
    hist = History(records([0.2, 0.4], [0.1, 0.3]))
    cols = {"train_acc": [0.5, 0.6, 0.7], "val_acc": [0.4, 0.5, 0.5]}
    path = plots.learning_curves({"a": hist, "b": cols, "c": run_dirs[0] / "history.json"},
                                 tmp_path / "n.png", size=(500, 300))
    img = read_png(path, (500, 300))
    assert min(count(img, c) for c in (C0, C1, C2)) > 50
    one = plots.learning_curves(hist.records, tmp_path / "one.png")  # default size
    read_png(one, (800, 500))


def test_learning_curves_errors(run_dirs, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"learning_curves: no history.json in .*nowhere"):
        plots.learning_curves([str(tmp_path / "nowhere")], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"learning_curves: expected 2 labels \(one per run\), "
                                         r"got 1"):
        plots.learning_curves(run_dirs, tmp_path / "x.png", labels=["a"])
    with pytest.raises(ValueError, match=r"learning_curves: expected size=\(width_px, "
                                         r"height_px\), two ints in \[16, 20000\], got \(0, 5\)"):
        plots.learning_curves(run_dirs, tmp_path / "x.png", size=(0, 5))
    with pytest.raises(ValueError, match="learning_curves: epoch record 0 has no train_acc"):
        plots.learning_curves([[{"epoch": 1, "val_acc": 0.5}]], tmp_path / "x.png")
    for runs in (None, 5):  # were bare "object is not iterable" TypeErrors
        with pytest.raises(TypeError, match="learning_curves: expected a run, a list of runs or "
                                            rf"a dict {{name: run}}, got {type(runs).__name__}"):
            plots.learning_curves(runs, tmp_path / "x.png")
    bad = tmp_path / "bad" / "history.json"
    bad.parent.mkdir()
    bad.write_text("{not json")  # was a bare JSONDecodeError
    with pytest.raises(ValueError, match=r"learning_curves: .*history.json' is not a "
                                         r"history.json \(not JSON"):
        plots.learning_curves(bad.parent, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# ---- the other figures -------------------------------------------------------------------------
def test_confusion_matrix(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 50)
    cm = confusion_matrix(y, np.where(rng.random(50) < 0.7, y, rng.integers(0, 4, 50)), 4)
    path = plots.confusion_matrix(cm, ["zero", "one", "two", "three"], tmp_path / "cm.png",
                                  title="cm", size=(400, 380))
    read_png(path, (400, 380))
    with pytest.raises(ValueError, match=r"confusion_matrix: expected a square cm of shape "
                                         r"\(K, K\), got shape \(2, 3\)"):
        plots.confusion_matrix(np.zeros((2, 3), int), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"expected 4 class names for a \(4, 4\) matrix, got 3"):
        plots.confusion_matrix(cm, ["a", "b", "c"], tmp_path / "x.png")


def test_saliency_grid(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 1, 8, 8))
    maps = np.abs(rng.standard_normal((3, 8, 8)))
    read_png(plots.saliency_grid(x, maps, tmp_path / "s.png", ["a", "b", "c"]),
             (390, 300))  # default: 130 px per image
    read_png(plots.saliency_grid(x.repeat(3, axis=1), maps, tmp_path / "rgb.png",
                                 size=(300, 200)), (300, 200))
    with pytest.raises(ValueError, match=r"saliency_grid: expected maps of shape \(3, 8, 8\) to "
                                         r"match images \(3, 1, 8, 8\), got \(3, 8, 7\)"):
        plots.saliency_grid(x, maps[..., :7], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"saliency_grid: expected images of shape "
                                         r"\(N, C, H, W\) with N >= 1 and C = 1 \(gray\) or 3"):
        plots.saliency_grid(x.repeat(2, axis=1), maps, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"saliency_grid: expected 3 titles \(one per image\)"):
        plots.saliency_grid(x, maps, tmp_path / "x.png", titles=["a"])
    with pytest.raises(ValueError, match=r"saliency_grid: expected cols to be a positive int"):
        plots.saliency_grid(x, maps, tmp_path / "x.png", cols=0)


def test_saliency_grid_wraps_many_images(tmp_path):
    # 25 images: 3 pairs of rows of 12 by default (one long row, 130 px per image, passed the
    # 20000 px limit from 154 images and failed)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((25, 1, 4, 4))
    maps = np.abs(rng.standard_normal((25, 4, 4)))
    read_png(plots.saliency_grid(x, maps, tmp_path / "many.png", dpi=20), (1560, 900))
    read_png(plots.saliency_grid(x[:5], maps[:5], tmp_path / "two.png", cols=2, dpi=20),
             (320, 900))


def test_fooling_grid_shows_no_change_as_gray(tmp_path):
    x = np.random.default_rng(2).standard_normal((1, 3, 16, 16))
    img = read_png(plots.fooling_grid(x, x.copy(), tmp_path / "f.png", size=(600, 220)),
                   (600, 220))
    # the difference panel (right third) is mid-gray where the first two are not
    right = img[60:180, 430:570]
    assert count(right, (128, 128, 128), tol=2) > 0.8 * 120 * 140 * 0.5
    read_png(plots.fooling_grid(x[:, :1], x[:, :1] + 0.1, tmp_path / "g.png", ["7 -> 3"],
                                magnify=5), (420, 160))
    with pytest.raises(ValueError, match=r"fooling_grid: expected fooled of the originals' shape "
                                         r"\(1, 3, 16, 16\), got \(1, 3, 16, 15\)"):
        plots.fooling_grid(x, x[..., :15], tmp_path / "x.png")


def test_misclassified_gallery_and_filters(tmp_path):
    model = resnet_cifar(8, num_classes=4, in_channels=3, seed=0)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 3, 8, 8)).astype(np.float32)
    recs = analysis.misclassified(model, x, rng.integers(0, 4, 30), 6)
    assert len(recs) == 6
    read_png(plots.misclassified_gallery(x, recs, tmp_path / "m.png", ["a", "b", "c", "d"]),
             (450, 340))  # 3 x 2 grid, 150 x 170 px per image
    as_dicts = [r.__dict__ for r in recs[:2]]
    read_png(plots.misclassified_gallery(x, as_dicts, tmp_path / "d.png", size=(300, 200)),
             (300, 200))
    with pytest.raises(ValueError, match=r"record index 99 is outside images of shape "
                                         r"\(30, 3, 8, 8\)"):
        plots.misclassified_gallery(x, [{**as_dicts[0], "index": 99}], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"misclassified_gallery: the records name classes "
                                         r"\d\.\.\d, classes has 2 names"):
        plots.misclassified_gallery(x, recs, tmp_path / "x.png", ["a", "b"])  # was IndexError
    for cols in (0, -2, 1.5):
        with pytest.raises(ValueError, match="misclassified_gallery: expected cols to be a "
                                             "positive int or None"):
            plots.misclassified_gallery(x, recs, tmp_path / "x.png", cols=cols)
    read_png(plots.first_layer_filters(model, tmp_path / "w.png", size=(330, 330)), (330, 330))
    gray = resnet_cifar(8, in_channels=1, seed=0)
    read_png(plots.first_layer_filters(gray, tmp_path / "w1.png"), (320, 350))  # 4 x 4 of 16
    with pytest.raises(TypeError, match="first_layer_filters: expected a fastres Module"):
        plots.first_layer_filters("resnet8", tmp_path / "x.png")


def test_missing_matplotlib_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    monkeypatch.delitem(sys.modules, "fastres.plots")
    fresh = importlib.import_module("fastres.plots")  # importing needs no matplotlib ...
    with pytest.raises(ImportError, match=r'fastres.plots.learning_curves needs matplotlib, an '
                                          r'optional dependency of fastres: pip install '
                                          r'"fastres\[plot\]"'):
        fresh.learning_curves([{"train_acc": 0.5}], tmp_path / "x.png")  # ... drawing does
    assert not (tmp_path / "x.png").exists()
