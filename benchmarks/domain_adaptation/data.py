"""Digits -> textured digits: an offline domain shift in the spirit of MNIST -> MNIST-M.

scikit-learn's digits (1797 8x8 images, UCI "Optical Recognition of Handwritten
Digits") ship with scikit-learn, so the benchmark needs no download. The
source domain is the digits upsampled to 32x32 and repeated over three
channels. The target domain is the same digits blended MNIST-M style
(Ganin et al., JMLR 2016): over a random 32x32 crop of a colour texture, the
pixel is ``|texture - digit|``, so the texture shows where the digit is not
and is inverted where it is. MNIST-M crops BSDS500 photographs; here the
textures are drawn procedurally (smoothed colour noise, gratings and colour
patches), from a fixed seed.

Both domains share one split of the digit indices (as MNIST-M reuses MNIST's
train and test digits): train, validation and test.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage
from sklearn.datasets import load_digits

SIZE = 32  # side of the images the model reads
TEXTURE_SIZE = 96  # side of the textures crops are taken from
STROKE_LOW, STROKE_HIGH = 0.25, 0.5  # upsampled ink 0-1 mapped to 0-255 between


@dataclasses.dataclass
class Domain:
    """One domain's images (float32, 0-255, ``(n, 32, 32, 3)``) and labels."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclasses.dataclass
class Shift:
    """A source and a target domain over the same labels."""

    source: Domain
    target: Domain
    labels: Domain  # the labels of the train / val / test images of both domains
    description: str


def digit_images(limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(n, 32, 32)`` float32 in 0-255 and their labels."""
    digits = load_digits()
    images, labels = digits.images, digits.target
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    scale = SIZE / images.shape[1]
    big = ndimage.zoom(images / 16.0, (1, scale, scale), order=1)
    # MNIST's strokes are nearly binary; sharpen the bilinear blobs likewise.
    big = np.clip((big - STROKE_LOW) / (STROKE_HIGH - STROKE_LOW), 0.0, 1.0) * 255.0
    return big.astype("float32"), labels.astype("int32")


def textures(count: int, seed: int) -> np.ndarray:
    """``count`` colour textures ``(count, 96, 96, 3)`` in 0-255.

    Each one sums smoothed colour noise at a random scale, a coloured
    sinusoidal grating at a random angle and a few flat colour patches.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((count, TEXTURE_SIZE, TEXTURE_SIZE, 3), "float32")
    yy, xx = np.mgrid[0:TEXTURE_SIZE, 0:TEXTURE_SIZE].astype("float32")
    for i in range(count):
        noise = rng.normal(size=(TEXTURE_SIZE, TEXTURE_SIZE, 3))
        sigma = rng.uniform(1.0, 6.0)
        smooth = _standard(ndimage.gaussian_filter(noise, (sigma, sigma, 0)))
        angle, period = rng.uniform(0, np.pi), rng.uniform(10, 40)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period
        grating = np.sin(phase)[..., None] * rng.uniform(-1, 1, 3)
        pattern = _standard(smooth + rng.uniform(0, 1) * grating)
        texture = rng.uniform(0.1, 0.9, 3) + rng.uniform(0.05, 0.25) * pattern
        for _ in range(rng.integers(0, 3)):
            y0, x0 = rng.integers(0, TEXTURE_SIZE - 8, 2)
            h, w = rng.integers(8, 40, 2)
            texture[y0 : y0 + h, x0 : x0 + w] = rng.uniform(0, 1, 3)
        out[i] = np.clip(texture, 0, 1) * 255.0
    return out


def _standard(x: np.ndarray) -> np.ndarray:
    return (x - x.mean()) / (x.std() + 1e-6)


def blend(digits: np.ndarray, patterns: np.ndarray, seed: int) -> np.ndarray:
    """MNIST-M's blend: ``|crop - digit|`` over a random crop of a random texture."""
    rng = np.random.default_rng(seed)
    out = np.empty((len(digits), SIZE, SIZE, 3), "float32")
    for i, digit in enumerate(digits):
        texture = patterns[rng.integers(len(patterns))]
        y0, x0 = rng.integers(0, TEXTURE_SIZE - SIZE, 2)
        crop = texture[y0 : y0 + SIZE, x0 : x0 + SIZE]
        out[i] = np.abs(crop - digit[..., None])
    return out


def split_indices(n: int, val: int, test: int, seed: int) -> tuple[np.ndarray, ...]:
    """Disjoint train / val / test indices of ``n`` examples, fixed by ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    return order[val + test :], order[:val], order[val : val + test]


def _domain(images: np.ndarray, parts: tuple[np.ndarray, ...]) -> Domain:
    return Domain(*(images[p] for p in parts))


def digits_shift(
    limit: int | None = None, val: int = 200, test: int = 400, seed: int = 0
) -> Shift:
    """Grey digits (source) -> digits blended over colour textures (target).

    Args:
        limit: Use only the first ``limit`` digits (smoke runs); None for all.
        val: Digits held out for validation (target validation selects
            settings; the test split never does).
        test: Digits held out for testing.
        seed: Seed of the split, the textures and the blend.

    Returns:
        The shift; train / val / test hold the same digits in both domains.
    """
    grey, labels = digit_images(limit)
    source = np.repeat(grey[..., None], 3, axis=-1)
    target = blend(grey, textures(200, seed), seed + 1)
    parts = split_indices(len(grey), val, test, seed)
    description = (
        f"scikit-learn digits ({len(grey)} images, 8x8 upsampled to 32x32): "
        "grey source; target = |texture crop - digit| over procedural colour "
        "textures (MNIST-M's blend)"
    )
    return Shift(
        _domain(source, parts),
        _domain(target, parts),
        _domain(labels, parts),
        description,
    )
