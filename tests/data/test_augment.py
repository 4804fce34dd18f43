"""Augmentation: determinism, shape/dtype, and exact properties."""

import numpy as np
import pytest

from fastres.data import (
    Compose,
    ContrastJitter,
    Cutout,
    GaussianNoise,
    HorizontalFlip,
    RandomCrop,
    RandomRotation,
    RandomShift,
    RandomZoom,
    SaltPepper,
    TintJitter,
    parse_augment,
)

ALL = [RandomCrop(None, padding=4), RandomCrop(24, padding=0), RandomShift(3), HorizontalFlip(),
       RandomRotation(20), RandomZoom(0.2), ContrastJitter(0.3), TintJitter(0.1),
       GaussianNoise(0.1), SaltPepper(0.1), Cutout(8)]


@pytest.fixture
def batch():
    return np.random.default_rng(0).random((6, 3, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("t", ALL, ids=repr)
def test_deterministic_shape_dtype(t, batch):
    keep = batch.copy()
    a = t(batch, np.random.default_rng(5))
    b = t(batch, np.random.default_rng(5))
    c = t(batch, np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(batch, keep)  # input untouched
    expected = (6, 3, 24, 24) if isinstance(t, RandomCrop) and t.size else batch.shape
    assert a.shape == expected and a.dtype == np.float32
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert t(batch.astype(np.float64), np.random.default_rng(5)).dtype == np.float64


def test_flip_twice_identity(batch):
    f = HorizontalFlip(p=1.0)
    once = f(batch, np.random.default_rng(0))
    np.testing.assert_array_equal(once, batch[..., ::-1])
    np.testing.assert_array_equal(f(once, np.random.default_rng(1)), batch)
    np.testing.assert_array_equal(HorizontalFlip(p=0.0)(batch, np.random.default_rng(0)), batch)


def test_crop_full_size_no_padding_is_identity(batch):
    np.testing.assert_array_equal(RandomCrop(32, padding=0)(batch, np.random.default_rng(0)), batch)
    np.testing.assert_array_equal(RandomShift(0)(batch, np.random.default_rng(0)), batch)


def test_crop_is_a_shifted_window(batch):
    out = RandomCrop(32, padding=4)(batch, np.random.default_rng(3))
    padded = np.pad(batch, ((0, 0), (0, 0), (4, 4), (4, 4)))
    for i in range(len(batch)):  # each output equals exactly one window of the padded image
        hits = [(dy, dx) for dy in range(9) for dx in range(9)
                if np.array_equal(out[i], padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert hits


def test_cutout_zeroes_expected_area():
    x = np.ones((16, 2, 10, 10), np.float32)
    cut = Cutout(4)
    out = cut(x, np.random.default_rng(7))
    y0, x0 = cut.boxes(16, 10, 10, np.random.default_rng(7))
    for i in range(16):
        expect = np.ones((10, 10), np.float32)
        expect[max(y0[i], 0):max(y0[i] + 4, 0), max(x0[i], 0):max(x0[i] + 4, 0)] = 0
        np.testing.assert_array_equal(out[i, 0], expect)
        np.testing.assert_array_equal(out[i, 1], expect)
        assert 0 < (expect == 0).sum() <= 16


def test_rotation_zero_and_zoom_one_are_identity(batch):
    np.testing.assert_allclose(RandomRotation(0)(batch, np.random.default_rng(0)), batch,
                               atol=1e-6)
    np.testing.assert_allclose(RandomZoom((1.0, 1.0))(batch, np.random.default_rng(0)), batch,
                               atol=1e-6)


def test_rotation_turns_about_the_centre():
    # any rotation of a constant image keeps the centre; the corners fill with zeros
    const = np.full((4, 3, 9, 9), 0.5, np.float32)
    out = RandomRotation(180)(const, np.random.default_rng(0))
    np.testing.assert_allclose(out[:, :, 2:7, 2:7], 0.5, atol=1e-6)
    assert (out[:, :, 0, 0] < 0.5).any()


def test_photometric_properties(batch):
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(GaussianNoise(0.0)(batch, rng), batch)
    sp = SaltPepper(1.0)(batch, rng)
    assert set(np.unique(sp).tolist()) <= {0.0, 1.0}
    assert (sp[:, 0] == sp[:, 1]).all()  # whole pixels, all channels
    grey = np.full((4, 3, 8, 8), 0.5, np.float32)
    np.testing.assert_allclose(ContrastJitter(0.5)(grey, rng), grey)  # mean preserved


def test_compose_and_parse(batch):
    c = parse_augment("crop,flip")
    assert isinstance(c, Compose) and [type(t) for t in c.transforms] == [RandomCrop,
                                                                          HorizontalFlip]
    manual = Compose([RandomCrop(None, 4), HorizontalFlip(0.5)])
    np.testing.assert_array_equal(c(batch, np.random.default_rng(1)),
                                  manual(batch, np.random.default_rng(1)))
    assert (parse_augment("none") is None and parse_augment("") is None
            and parse_augment(None) is None)
    c2 = parse_augment("standard, cutout:16, rotate:10, noise:0.01")
    assert len(c2) == 5 and c2.transforms[2].size == 16 and c2.transforms[3].degrees == 10
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        parse_augment("crop,blur")
    with pytest.raises(ValueError, match="bad argument"):
        parse_augment("cutout:x")


def test_bad_input():
    with pytest.raises(ValueError, match="NCHW"):
        HorizontalFlip()(np.zeros((3, 8, 8), np.float32), np.random.default_rng(0))
    with pytest.raises(ValueError, match="larger than the padded"):
        RandomCrop(40, padding=2)(np.zeros((1, 1, 32, 32), np.float32), np.random.default_rng(0))
