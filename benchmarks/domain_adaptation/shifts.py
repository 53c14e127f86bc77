"""The four shifts of the benchmark, each split once with a fixed seed.

- MNIST -> USPS and USPS -> MNIST (``../shared/datasets/digits``). Only
  MNIST's 10,000 test images exist there: ``default_rng(0).permutation``
  splits them into train 6,000 / val 2,000 / test 2,000. USPS train (7,291)
  is permuted with ``default_rng(0)``: its first 1,000 are val, the other
  6,291 train; the official 2,007 test images are test. USPS 16x16 is
  resized to 28x28 (PIL bilinear, as Transfer-Learning-Library's
  ``Resize(28)``). Images are 0-255, ``(n, 28, 28, 1)``.
- Textured digits (`data.digits_shift`, seed 0): 1,197 / 200 / 400, the same
  digits grey (source) and over colour textures (target), ``(n, 32, 32, 3)``.
- Amazon reviews (`text.py`): 12 pairs of four domains.

Each domain's *train* part is the labelled source data, or the unlabelled
target data (labels used only by the oracle); *val* is never used by the
default arms (the source's could be; the target's only by rows marked as
chosen with target labels); *test* scores.
"""

from __future__ import annotations

import dataclasses
import gzip

import numpy as np

from benchmarks import common
from benchmarks.domain_adaptation.data import digits_shift

DIGITS = common.DATASETS / "digits"


@dataclasses.dataclass
class Part:
    """Inputs and labels of one part of one domain."""

    x: np.ndarray
    y: np.ndarray


@dataclasses.dataclass
class Domain:
    """One domain's train, val and test parts."""

    train: Part
    val: Part
    test: Part


@dataclasses.dataclass
class Task:
    """A source and a target domain with the same classes."""

    name: str
    source: Domain
    target: Domain
    description: str


def _mnist() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(DIGITS / "t10k-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(DIGITS / "t10k-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype("int32")
    return x.astype("float32")[..., None], y


def _resize28(flat: np.ndarray) -> np.ndarray:
    from PIL import Image

    out = np.empty((len(flat), 28, 28, 1), "float32")
    for i, row in enumerate(flat):
        pixels = np.round(row.reshape(16, 16) * 255).astype(np.uint8)
        image = Image.fromarray(pixels, "L").resize((28, 28), Image.BILINEAR)
        out[i, ..., 0] = np.asarray(image, "float32")
    return out


def _usps() -> tuple[Part, Part]:
    import h5py

    with h5py.File(DIGITS / "usps.h5") as f:
        train = Part(_resize28(f["train"]["data"][:]), f["train"]["target"][:])
        test = Part(_resize28(f["test"]["data"][:]), f["test"]["target"][:])
    return train, test


def _take(x: np.ndarray, y: np.ndarray, idx: np.ndarray) -> Part:
    return Part(x[idx], y[idx].astype("int32"))


def mnist_usps() -> tuple[Domain, Domain]:
    """MNIST and USPS, split as the module says."""
    mx, my = _mnist()
    order = np.random.default_rng(0).permutation(len(mx))
    mnist = Domain(
        _take(mx, my, order[:6000]),
        _take(mx, my, order[6000:8000]),
        _take(mx, my, order[8000:]),
    )
    train, test = _usps()
    order = np.random.default_rng(0).permutation(len(train.x))
    usps = Domain(
        _take(train.x, train.y, order[1000:]),
        _take(train.x, train.y, order[:1000]),
        Part(test.x, test.y.astype("int32")),
    )
    return mnist, usps


def image_tasks(limit: int | None = None) -> list[Task]:
    """MNIST -> USPS, USPS -> MNIST and textured digits (``limit``: smoke runs)."""
    mnist, usps = mnist_usps()
    tex = digits_shift(seed=0)
    labels = tex.labels

    def textured(images) -> Domain:
        return Domain(
            *(
                Part(getattr(images, s), getattr(labels, s))
                for s in ("train", "val", "test")
            )
        )

    m, u = "MNIST (6,000 train, 2,000 test)", "USPS (6,291 train, 2,007 test)"
    tasks = [
        Task("M->U", mnist, usps, f"{m} -> {u}"),
        Task("U->M", usps, mnist, f"{u} -> {m}"),
        Task("textured", textured(tex.source), textured(tex.target), tex.description),
    ]
    if limit:
        tasks = [_shrink(t, limit) for t in tasks]
    return tasks


def _shrink(task: Task, n: int) -> Task:
    def part(p: Part) -> Part:
        return Part(p.x[:n], p.y[:n])

    def domain(d: Domain) -> Domain:
        return Domain(part(d.train), part(d.val), part(d.test))

    return Task(task.name, domain(task.source), domain(task.target), task.description)
