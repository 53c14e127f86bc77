"""Image data: folders of images (one subfolder per class, or unlabelled), arrays.

A folder with a few broken or non-image files still trains, and never stops
mid-epoch on one. When the folder is scanned, every file's header is checked
(one small read, no decoding: `tltf.data.scan`); non-images and broken
headers are left out and listed in one warning. A file that passes but does
not decode (truncated, corrupt body) is left out when the pipeline first
decodes it: it is added to ``LoadedData.skipped`` and named in one warning,
and training goes on. Missing folders, empty class folders and single-class
folders fail before training with a clear error.

Decoded images are cached as ``cache="auto"`` decides (`tltf.data.budget`):
in memory while the folder's estimated decoded size fits the budget, else on
disk or not at all. The cache holds whichever is smaller: the decoded uint8
images (resized after the cache, which gives the same float32 pixels as
resizing first) or the resized float32 images.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from tltf import arguments
from tltf.data.base import LoadedData, check_class_names, existing_image_folder, finish
from tltf.data.image_pipeline import (
    Cache,
    DecodeFailures,
    after_cache,
    decoded_images,
    plan_images,
)
from tltf.data.inputs import check_finite
from tltf.data.labels import encode_labels
from tltf.data.scan import IMAGE_EXTENSIONS, image_files, looks_like_image
from tltf.errors import DataError

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "from_arrays",
    "image_files",
    "image_folder",
    "looks_like_image",
    "unlabelled_images",
]


def image_folder(
    directory: str | os.PathLike,
    *,
    image_size: tuple[int, int] = (224, 224),
    batch_size: int = 32,
    validation_split: float = 0.2,
    seed: int = 1337,
    cache: Cache = "auto",
) -> LoadedData:
    """Loads a folder with one subfolder of images per class.

    Images are decoded, resized to ``image_size`` and kept as float32 pixels
    in [0, 255]: tltf models apply their base's preprocessing themselves.
    The validation split is stratified (the same fraction of every class) and
    reproducible for a given ``seed``.

    Args:
        directory: ``directory/<class name>/<image files>``.
        image_size: ``(height, width)`` to resize to (one integer for a
            square); build the model for the same size (``input_shape=(height,
            width, 3)``).
        batch_size: Examples per batch.
        validation_split: Fraction held out for validation; 0 for none.
        seed: Seed of the split and of the shuffling.
        cache: ``"auto"``: in memory while the estimated decoded size fits
            the cache budget (`tltf.data.set_cache_budget`), else in a
            temporary folder deleted at exit (or off if the disk is short
            of room); one log line says which and why. True (memory), False
            (off), or a file prefix for a disk cache (``<prefix>.train`` and
            ``<prefix>.val``, kept).

    Returns:
        `LoadedData` with class names in sorted folder order.

    Raises:
        DataError: The folder is missing (or a file), has fewer than two class
            folders, or a class folder has no readable image.
        ConfigError: A bad ``image_size``, ``batch_size`` or
            ``validation_split``.

    Example:
        >>> data = tltf.data.image_folder("flowers/", image_size=(64, 64))
        >>> data.class_names
        ['daisy', 'roses']
    """
    image_size = arguments.image_size(image_size)
    batch_size = arguments.count("batch_size", batch_size)
    validation_split = arguments.fraction("validation_split", validation_split)
    seed = arguments.seed(seed)
    root = existing_image_folder(
        directory,
        "a folder with one subfolder of images per class (folder/<class>/<image>)",
    )
    class_names = sorted(p.name for p in root.iterdir() if p.is_dir())
    check_class_names(class_names, f"Image folder {str(root)!r}")
    files, labels, skipped = _scan(root, class_names)
    _warn_skipped(root, skipped)
    train_idx, val_idx = _stratified_split(labels, validation_split, seed)
    plan, raw = plan_images(files, image_size, cache, f"the decoded images of {root}")

    def make(idx, training):
        split = [files[i] for i in idx]
        failures = DecodeFailures(split, root, skipped)
        ds = decoded_images(split, [labels[i] for i in idx], image_size, raw, failures)
        return finish(
            ds,
            batch_size=batch_size,
            training=training,
            cache=plan.split("train" if training else "val"),
            seed=seed,
            prepare=after_cache(image_size, raw, labelled=True),
        )

    return LoadedData(
        train=make(train_idx, True),
        validation=make(val_idx, False) if len(val_idx) else None,
        class_names=class_names,
        skipped=skipped,
        num_train=len(train_idx),
        num_validation=len(val_idx),
    )


def unlabelled_images(
    directory: str | os.PathLike,
    *,
    image_size: tuple[int, int] = (224, 224),
    batch_size: int = 32,
    seed: int = 1337,
    cache: Cache = "auto",
) -> tf.data.Dataset:
    """Loads every image under a folder, without labels (e.g. a target domain).

    The folder may be flat or hold subfolders (of classes or anything else):
    their names are ignored. Images are decoded, resized and kept as float32
    pixels in [0, 255], like `image_folder`'s; unreadable files are left out
    and listed in one warning.

    Args:
        directory: A folder of images, at any depth.
        image_size: ``(height, width)`` to resize to (one integer for a
            square).
        batch_size: Images per batch.
        seed: Seed of the shuffling (reshuffled every pass).
        cache: ``"auto"`` (memory within the cache budget, else a temporary
            folder deleted at exit, or off), True (memory), False (off), or
            a file prefix for a disk cache (``<prefix>.images``, kept). See
            `image_folder`.

    Returns:
        A batched, shuffled dataset of images ``(batch, height, width, 3)``.

    Raises:
        DataError: The folder is missing or holds no readable image.

    Example:
        >>> target = tltf.data.unlabelled_images("street_photos/", image_size=(64, 64))
        >>> tltf.adapt_domain(model, source_data, target)
    """
    image_size = arguments.image_size(image_size)
    batch_size = arguments.count("batch_size", batch_size)
    seed = arguments.seed(seed)
    root = existing_image_folder(
        directory, "a folder of images (flat, or in subfolders whose names are ignored)"
    )
    files, skipped = image_files(root)
    _warn_skipped(root, skipped)
    if not files:
        raise DataError(
            f"Image folder {str(root)!r} has no readable images "
            f"({', '.join(IMAGE_EXTENSIONS)}). Add images, flat or in subfolders."
        )
    plan, raw = plan_images(files, image_size, cache, f"the decoded images of {root}")
    ds = decoded_images(files, None, image_size, raw, DecodeFailures(files, root, []))
    return finish(
        ds,
        batch_size=batch_size,
        training=True,
        cache=plan.split("images"),
        seed=seed,
        prepare=after_cache(image_size, raw, labelled=False),
    )


def from_arrays(
    x: np.ndarray,
    y: np.ndarray,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    validation_split: float = 0.0,
    seed: int = 1337,
) -> LoadedData:
    """Wraps in-memory arrays (images, features or token ids) as `LoadedData`.

    Args:
        x: Inputs, first axis the examples (finite numbers).
        y: One class label per example: integers ``0..n-1``, other integers
            or whole floats (numbered in sorted order: labels ``1, 2, 3``
            are classes ``0, 1, 2`` named ``"1", "2", "3"``) or names
            (``"cat"``; classes in sorted order). See `tltf.data.labels`.
        class_names: Names in class order; None for the labels' own (see
            above). With names, integer labels are ids into them.
        batch_size: Examples per batch.
        validation_split: Stratified fraction held out for validation.
        seed: Seed of the split and shuffling.

    Returns:
        `LoadedData` over the arrays; its labels are the class ids.

    Raises:
        DataError: ``x`` and ``y`` differ in length or are empty, ``x`` holds
            NaN or inf, a label is missing, fractional or not one of
            ``class_names``, or there are fewer than two classes.
        ConfigError: A bad ``batch_size`` or ``validation_split``.

    Example:
        >>> data = tltf.data.from_arrays(x, np.array(["cat", "dog", "cat"]))
        >>> data.class_names
        ['cat', 'dog']
    """
    batch_size = arguments.count("batch_size", batch_size)
    validation_split = arguments.fraction("validation_split", validation_split)
    seed = arguments.seed(seed)
    x = _array_of_examples(x)
    n_labels = len(y) if hasattr(y, "__len__") else -1
    if x.ndim == 0 or len(x) == 0 or len(x) != n_labels:
        raise DataError(
            f"x and y must be non-empty and of equal length. Received: "
            f"len(x)={len(x) if x.ndim else 'a scalar'}, len(y)={n_labels}"
        )
    check_finite(x, "x")
    names, y = encode_labels(y, class_names, "from_arrays")
    check_class_names(names, "from_arrays' labels")
    train_idx, val_idx = _stratified_split(y, validation_split, seed)

    def make(idx, training):
        ds = tf.data.Dataset.from_tensor_slices((x[idx], y[idx]))
        return finish(
            ds, batch_size=batch_size, training=training, cache=False, seed=seed
        )

    return LoadedData(
        train=make(train_idx, True),
        validation=make(val_idx, False) if len(val_idx) else None,
        class_names=names,
        num_train=len(train_idx),
        num_validation=len(val_idx),
    )


def _array_of_examples(x: Any) -> np.ndarray:
    """``x`` as one NumPy array; examples of different shapes fail clearly."""
    try:
        array = np.asarray(x)
    except ValueError:  # NumPy refuses ragged nested lists.
        array = np.asarray(x, dtype=object)
    if (
        array.dtype == object
        and array.ndim
        and any(isinstance(item, (np.ndarray, list, tuple)) for item in array.flat)
    ):
        raise DataError(
            "from_arrays: x must be one array of examples of the same shape "
            "(e.g. images all resized to one size). Received examples of "
            "different shapes; resize them, or use tltf.data.image_folder."
        )
    return array


def _scan(root: Path, class_names: list[str]):
    files: list[str] = []
    labels: list[int] = []
    skipped: list[str] = []
    for label, name in enumerate(class_names):
        found, bad = image_files(root / name, relative_to=root)
        if not found:
            raise DataError(
                f"Class folder {str(root / name)!r} has no readable images "
                f"({', '.join(IMAGE_EXTENSIONS)}). Add images or remove the folder."
            )
        files += found
        labels += [label] * len(found)
        skipped += bad
    return files, labels, skipped


def _stratified_split(labels, fraction: float, seed: int):
    """Training and validation indices, ``fraction`` of every class held out.

    The training indices come in a seeded random order, so that the
    pipeline's shuffle buffer mixes classes even when the files or rows are
    grouped by class (folders always are; many CSV exports too). The
    validation indices are sorted.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    train, val = [], []
    for label in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == label))
        n_val = int(round(len(idx) * fraction))
        if fraction > 0 and len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.extend(idx[:n_val].tolist())
        train.extend(idx[n_val:].tolist())
    train = rng.permutation(np.asarray(train, "int64"))
    return train, np.sort(np.asarray(val, "int64"))


def _warn_skipped(root: Path, skipped: list[str]) -> None:
    """One warning that lists every file the scan skipped, if any."""
    if skipped:
        logger.warning(
            "Skipped %d unreadable or non-image file(s) in %s: %s",
            len(skipped),
            root,
            ", ".join(skipped),
        )
