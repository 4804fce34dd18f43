"""Seeded, composable augmentations of float32 NCHW batches.

Each transform is a small callable ``t(x, rng) -> x`` that returns a new array (the input is not
modified) of the same shape and dtype, drawing all its randomness from `rng`, so a batch and a
generator state determine the result exactly. Geometric transforms that are pure indexing (crop,
shift, flip, cutout) and the photometric ones are vectorised over the batch; rotation and zoom
resample each image with scikit-image. Images are expected in [0, 1] (augment before
normalising: append `Normalize` last); photometric transforms clip to [0, 1].
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "AUGMENT_NAMES",
    "Compose",
    "ContrastJitter",
    "Cutout",
    "GaussianNoise",
    "HorizontalFlip",
    "Normalize",
    "RandomCrop",
    "RandomRotation",
    "RandomShift",
    "RandomZoom",
    "SaltPepper",
    "TintJitter",
    "parse_augment",
]


def _check(x: np.ndarray, who: str) -> None:
    if not isinstance(x, np.ndarray) or x.ndim != 4:
        raise ValueError(f"{who}: expected an NCHW (4-d) array, got "
                         f"{getattr(x, 'shape', type(x).__name__)}")


def _pair(v, who: str) -> tuple[int, int] | None:
    if v is None:
        return None
    if isinstance(v, (int, np.integer)):
        v = (int(v), int(v))
    h, w = (int(t) for t in v)
    if h < 1 or w < 1:
        raise ValueError(f"{who}: size must be positive, got {v}")
    return h, w


def _crop(x: np.ndarray, out_hw: tuple[int, int], pad: int, rng) -> np.ndarray:
    """Zero-pad by `pad`, then take one random (h, w) window per sample (all channels)."""
    n = len(x)
    h, w = out_hw
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    if h > xp.shape[2] or w > xp.shape[3]:
        raise ValueError(f"RandomCrop: crop {out_hw} larger than the padded image "
                         f"{xp.shape[2:]} (input {x.shape}, padding {pad})")
    oy = rng.integers(0, xp.shape[2] - h + 1, size=n)
    ox = rng.integers(0, xp.shape[3] - w + 1, size=n)
    # windows view (N, C, H', W', h, w); advanced indices on axes 0, 2, 3 gather one per sample
    win = np.lib.stride_tricks.sliding_window_view(xp, (h, w), axis=(2, 3))
    return win[np.arange(n), :, oy, ox]


class RandomCrop:
    """Zero-pad every side by `padding`, then crop a random `size` window (the CIFAR standard:
    ``RandomCrop(32, padding=4)``). ``size=None`` keeps the input size."""

    def __init__(self, size: int | tuple[int, int] | None = None, padding: int = 4):
        self.size = _pair(size, "RandomCrop")
        if int(padding) < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)

    def __call__(self, x, rng):
        _check(x, "RandomCrop")
        return _crop(x, self.size or x.shape[2:], self.padding, rng)

    def __repr__(self):
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomShift:
    """Translate each image by integers in [-max_px, max_px] on both axes, filling with 0."""

    def __init__(self, max_px: int = 4):
        if int(max_px) < 0:
            raise ValueError(f"RandomShift: max_px must be >= 0, got {max_px}")
        self.max_px = int(max_px)

    def __call__(self, x, rng):
        _check(x, "RandomShift")
        return _crop(x, x.shape[2:], self.max_px, rng)

    def __repr__(self):
        return f"RandomShift({self.max_px})"


class HorizontalFlip:
    """Mirror each image left-right with probability `p`."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"HorizontalFlip: p must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x, rng):
        _check(x, "HorizontalFlip")
        flip = rng.random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, :, :, ::-1]
        return out

    def __repr__(self):
        return f"HorizontalFlip(p={self.p})"


def _warp_each(x: np.ndarray, matrices, order: int = 1) -> np.ndarray:
    """Resample each image with its own 3x3 output->input affine matrix (scikit-image warp)."""
    from skimage.transform import AffineTransform, warp

    out = np.empty_like(x)
    for i in range(len(x)):
        img = x[i].transpose(1, 2, 0)  # HWC: warp treats the last axis as channels
        out[i] = warp(img, AffineTransform(matrix=matrices[i]), order=order, mode="constant",
                      cval=0.0, preserve_range=True).transpose(2, 0, 1)
    return out


def _about_center(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """Conjugate a 2x2 linear map (in x=col, y=row coordinates) to act about the image centre."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = np.array([cx, cy]) - a @ np.array([cx, cy])
    return m


class RandomRotation:
    """Rotate each image by an angle uniform in [-degrees, degrees] about its centre
    (bilinear, zero fill)."""

    def __init__(self, degrees: float = 15.0):
        if degrees < 0:
            raise ValueError(f"RandomRotation: degrees must be >= 0, got {degrees}")
        self.degrees = float(degrees)

    def __call__(self, x, rng):
        _check(x, "RandomRotation")
        theta = np.deg2rad(rng.uniform(-self.degrees, self.degrees, size=len(x)))
        h, w = x.shape[2:]
        mats = [_about_center(np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]), h, w)
                for t in theta]
        return _warp_each(x, mats)

    def __repr__(self):
        return f"RandomRotation({self.degrees})"


class RandomZoom:
    """Scale each image about its centre by a factor uniform in `range` (e.g. (0.9, 1.1); a
    single number r means (1 - r, 1 + r)); > 1 zooms in, < 1 zooms out with zero fill."""

    def __init__(self, range: float | tuple[float, float] = 0.1):
        lo, hi = (1.0 - range, 1.0 + range) if np.isscalar(range) else range
        if not 0 < lo <= hi:
            raise ValueError(f"RandomZoom: need 0 < low <= high, got ({lo}, {hi})")
        self.range = (float(lo), float(hi))

    def __call__(self, x, rng):
        _check(x, "RandomZoom")
        s = rng.uniform(*self.range, size=len(x))
        h, w = x.shape[2:]
        # warp maps output -> input coordinates, so a zoom by s samples at 1/s
        return _warp_each(x, [_about_center(np.eye(2) / si, h, w) for si in s])

    def __repr__(self):
        return f"RandomZoom({self.range})"


class ContrastJitter:
    """Scale each image's deviation from its own mean by a factor in [1 - s, 1 + s]."""

    def __init__(self, strength: float = 0.2):
        if not 0 <= strength < 1:
            raise ValueError(f"ContrastJitter: strength must be in [0, 1), got {strength}")
        self.strength = float(strength)

    def __call__(self, x, rng):
        _check(x, "ContrastJitter")
        f = rng.uniform(1 - self.strength, 1 + self.strength, size=(len(x), 1, 1, 1))
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        out = (x - mean) * f.astype(x.dtype) + mean
        return np.clip(out, 0.0, 1.0, out=out)

    def __repr__(self):
        return f"ContrastJitter({self.strength})"


class TintJitter:
    """Add a per-image, per-channel offset uniform in [-s, s] (a colour cast)."""

    def __init__(self, strength: float = 0.05):
        if strength < 0:
            raise ValueError(f"TintJitter: strength must be >= 0, got {strength}")
        self.strength = float(strength)

    def __call__(self, x, rng):
        _check(x, "TintJitter")
        off = rng.uniform(-self.strength, self.strength, size=(len(x), x.shape[1], 1, 1))
        out = x + off.astype(x.dtype)
        return np.clip(out, 0.0, 1.0, out=out)

    def __repr__(self):
        return f"TintJitter({self.strength})"


class GaussianNoise:
    """Add N(0, std^2) noise to every value."""

    def __init__(self, std: float = 0.05):
        if std < 0:
            raise ValueError(f"GaussianNoise: std must be >= 0, got {std}")
        self.std = float(std)

    def __call__(self, x, rng):
        _check(x, "GaussianNoise")
        noise = rng.standard_normal(x.shape, dtype=x.dtype)  # float32 or float64
        noise *= x.dtype.type(self.std)
        out = x + noise
        return np.clip(out, 0.0, 1.0, out=out)

    def __repr__(self):
        return f"GaussianNoise({self.std})"


class SaltPepper:
    """Set a fraction `amount` of pixel positions (all channels) to 0 or 1, half each."""

    def __init__(self, amount: float = 0.02):
        if not 0 <= amount <= 1:
            raise ValueError(f"SaltPepper: amount must be in [0, 1], got {amount}")
        self.amount = float(amount)

    def __call__(self, x, rng):
        _check(x, "SaltPepper")
        n, _, h, w = x.shape
        u = rng.random((n, 1, h, w))
        zero, one = x.dtype.type(0), x.dtype.type(1)
        out = np.where(u < self.amount / 2, zero, x)
        return np.where((u >= self.amount / 2) & (u < self.amount), one, out)

    def __repr__(self):
        return f"SaltPepper({self.amount})"


class Cutout:
    """Zero a `size` x `size` square (all channels) at a random centre per image (DeVries &
    Taylor 2017: the centre is uniform over the image, so the square may be clipped)."""

    def __init__(self, size: int = 8):
        if int(size) < 1:
            raise ValueError(f"Cutout: size must be >= 1, got {size}")
        self.size = int(size)

    def boxes(self, n: int, h: int, w: int, rng) -> tuple[np.ndarray, np.ndarray]:
        """Top-left corners (y0, x0) the call draws, possibly negative; the square ends at +size."""
        cy = rng.integers(0, h, size=n)
        cx = rng.integers(0, w, size=n)
        return cy - self.size // 2, cx - self.size // 2

    def __call__(self, x, rng):
        _check(x, "Cutout")
        n, _, h, w = x.shape
        y0, x0 = self.boxes(n, h, w, rng)
        r = np.arange(h)[None, :]
        c = np.arange(w)[None, :]
        rows = (r >= y0[:, None]) & (r < y0[:, None] + self.size)  # (N, H)
        cols = (c >= x0[:, None]) & (c < x0[:, None] + self.size)  # (N, W)
        mask = rows[:, None, :, None] & cols[:, None, None, :]
        return np.where(mask, x.dtype.type(0), x)

    def __repr__(self):
        return f"Cutout({self.size})"


class Normalize:
    """``(x - mean[c]) / std[c]`` (not random; put it last, after the [0, 1] transforms)."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)

    def __call__(self, x, rng=None):
        from fastres.data.dataset import normalize

        return normalize(x, self.mean, self.std)

    def __repr__(self):
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Compose:
    """Apply transforms in order, all drawing from the one `rng`."""

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x, rng):
        for t in self.transforms:
            x = t(x, rng)
        return x

    def __len__(self):
        return len(self.transforms)

    def __repr__(self):
        return "Compose([" + ", ".join(map(repr, self.transforms)) + "])"


# name -> (constructor, type of its optional ":arg")
_PARSERS = {
    "crop": (lambda a: RandomCrop(None, padding=4 if a is None else int(a))),
    "flip": (lambda a: HorizontalFlip(0.5 if a is None else float(a))),
    "rotate": (lambda a: RandomRotation(15.0 if a is None else float(a))),
    "shift": (lambda a: RandomShift(2 if a is None else int(a))),
    "zoom": (lambda a: RandomZoom(0.1 if a is None else float(a))),
    "contrast": (lambda a: ContrastJitter(0.2 if a is None else float(a))),
    "tint": (lambda a: TintJitter(0.05 if a is None else float(a))),
    "noise": (lambda a: GaussianNoise(0.05 if a is None else float(a))),
    "saltpepper": (lambda a: SaltPepper(0.02 if a is None else float(a))),
    "cutout": (lambda a: Cutout(8 if a is None else int(a))),
}
_ALIASES = {"hflip": "flip", "rotation": "rotate", "translate": "shift", "salt_pepper":
            "saltpepper", "sp": "saltpepper", "gaussian": "noise"}
_PRESETS = {"standard": "crop,flip", "cifar": "crop,flip"}
AUGMENT_NAMES = tuple(_PARSERS) + tuple(_PRESETS)


def parse_augment(spec: str | None) -> Compose | None:
    """Build a `Compose` from a CLI string: ``"crop,flip"``, ``"crop:4,flip,cutout:16"``,
    ``"standard"`` (= crop,flip). ``"none"``, ``""`` or None give None.

    Names (optional ``:arg``): crop[:padding=4], flip[:p=0.5], rotate[:degrees=15],
    shift[:max_px=2], zoom[:r=0.1], contrast[:s=0.2], tint[:s=0.05], noise[:std=0.05],
    saltpepper[:amount=0.02], cutout[:size=8].
    """
    if spec is None or spec.strip().lower() in ("", "none", "off", "false"):
        return None
    items = []
    for part in spec.split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part in _PRESETS:
            items += parse_augment(_PRESETS[part]).transforms
            continue
        name, _, arg = part.partition(":")
        name = _ALIASES.get(name, name)
        if name not in _PARSERS:
            raise ValueError(f"parse_augment: unknown augmentation {name!r} in {spec!r}; "
                             f"expected 'none' or a comma list of {', '.join(AUGMENT_NAMES)}")
        try:
            if arg and arg.lstrip("+-").isalpha():  # inf, nan: float() takes them
                raise ValueError(f"expected a finite number, got {arg!r}")
            items.append(_PARSERS[name](arg or None))
        except ValueError as exc:
            raise ValueError(f"parse_augment: bad argument in {part!r}: {exc}") from None
    return Compose(items) if items else None
