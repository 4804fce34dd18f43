"""Image-folder loader on a few PNGs written by the test."""

import numpy as np
import pytest
from skimage.io import imsave

from fastres.data import BatchLoader, FolderDataset, load_dataset

COLOURS = {"c0": (255, 0, 0), "c1": (0, 255, 0), "c2": (0, 0, 255)}


def _write(folder, n=5, size=(20, 24)):
    for name, rgb in COLOURS.items():
        (folder / name).mkdir(parents=True)
        for i in range(n):
            img = np.zeros(size + (3,), np.uint8) + np.array(rgb, np.uint8)
            img[0, 0] = i  # distinct files
            imsave(folder / name / f"img_{i}.png", img, check_contrast=False)
    # grayscale and RGBA images are converted to RGB
    imsave(folder / "c0" / "gray.png", np.full(size, 255, np.uint8), check_contrast=False)
    rgba = np.zeros(size + (4,), np.uint8)
    rgba[..., 0] = 255
    rgba[..., 3] = 255
    imsave(folder / "c0" / "rgba.png", rgba, check_contrast=False)
    (folder / "c1" / "notes.txt").write_text("not an image")


def test_folder_split_80_20(tmp_path):
    _write(tmp_path)
    ds = load_dataset(f"folder:{tmp_path}", seed=1, image_size=16)
    assert ds.classes == ["c0", "c1", "c2"]
    assert len(ds.y_train) + len(ds.y_test) == 17 and len(ds.y_test) == 3
    assert ds.x_train.shape[1:] == (3, 16, 16) and ds.x_train.dtype == np.float32
    assert np.bincount(ds.y_test).tolist() == [1, 1, 1]
    # blue images stay blue after resizing
    blue = ds.x_train[ds.y_train == 2]
    np.testing.assert_allclose(blue[:, 2, 4:12, 4:12], 1.0, atol=1e-6)
    np.testing.assert_allclose(blue[:, :2, 4:12, 4:12], 0.0, atol=1e-6)
    again = load_dataset(f"folder:{tmp_path}", seed=1, image_size=16)
    np.testing.assert_array_equal(ds.x_test, again.x_test)


def test_folder_train_test_layout_and_lazy(tmp_path):
    _write(tmp_path / "train", n=4)
    _write(tmp_path / "test", n=2)
    ds = load_dataset(f"folder:{tmp_path}", image_size=(8, 12))
    assert len(ds.y_train) == 14 and len(ds.y_test) == 8
    assert ds.x_test.shape == (8, 3, 8, 12)
    lazy = FolderDataset.from_directory(tmp_path, split="train", image_size=(8, 12))
    assert len(lazy) == 14 and lazy.classes == ["c0", "c1", "c2"]
    np.testing.assert_array_equal(lazy[np.arange(14)], ds.x_train)
    np.testing.assert_array_equal(lazy[3], ds.x_train[3])
    loader = BatchLoader(lazy, lazy.labels, 5, seed=0)
    seen = [yb for _, yb in loader.iter_epoch(0)]
    assert sorted(np.concatenate(seen).tolist()) == sorted(ds.y_train.tolist())


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_dataset(f"folder:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no class subfolders"):
        load_dataset(f"folder:{tmp_path / 'empty'}")


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin:DeprecationWarning")  # imageio
def test_read_image_modes_and_corrupt_files(tmp_path):
    from PIL import Image

    from fastres.data.folder import read_image
    rgb = np.zeros((8, 8, 3), np.uint8) + np.array([200, 40, 90], np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    # CMYK decoded as RGB, not its C, M, Y read as R, G, B (a 0.5 mean error before)
    want = rgb.transpose(2, 0, 1) / 255
    assert np.abs(read_image(tmp_path / "cmyk.jpg", 8) - want).max() < 0.05
    Image.fromarray(np.full((8, 8), 77, np.uint8)).convert("LA").save(tmp_path / "la.png")
    np.testing.assert_allclose(read_image(tmp_path / "la.png", 8), 77 / 255, rtol=1e-6)
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"image_size: expected a positive int or an \(h, w\) "
                                         r"pair of them, got \(8,\)"):
        read_image(tmp_path / "la.png", (8,))
    for name in ("bad.png", "empty.jpg"):
        with pytest.raises(ValueError, match=f"read_image: cannot decode .*{name}"):
            read_image(tmp_path / name, 8)
