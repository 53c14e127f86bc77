"""The tf.data pipeline of image folders: decode, guard, cache, resize.

`decoded_images` turns a list of files into unbatched images (and labels).
A file that fails to decode is left out of the pass and reported by
`DecodeFailures`; `plan_images` decides where the decoded images are cached
(`tltf.data.budget`) and in which form: the decoded uint8 image (resized
after the cache by `after_cache`, which gives the same float32 pixels as
resizing first) when it is smaller than the resized float32 one.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltf.data.base import AUTOTUNE
from tltf.data.budget import CachePlan, plan_cache
from tltf.data.scan import mean_pixels, relative

logger = logging.getLogger("tltf.data.images")

__all__ = [
    "DecodeFailures",
    "after_cache",
    "decode",
    "decoded_images",
    "plan_images",
    "resize",
]

Cache = bool | str | os.PathLike
# Bytes a cached example costs besides its pixels (label, tensor headers).
EXAMPLE_OVERHEAD = 256


def plan_images(
    files: list[str], image_size: tuple[int, int], cache: Cache, what: str
) -> tuple[CachePlan, bool]:
    """Where the decoded images are cached, and whether as uint8 (``raw``).

    ``raw``: the decoded uint8 images (resized after the cache) take less
    room than the resized float32 ones, judged from a sample of headers.
    """
    resized = image_size[0] * image_size[1] * 3 * 4
    pixels = mean_pixels(files)
    raw = pixels is not None and pixels * 3 < resized
    per_image = (pixels * 3 if raw else resized) + EXAMPLE_OVERHEAD
    return plan_cache(cache, int(per_image * len(files)), what), raw


def decoded_images(
    files: list[str],
    labels: list[int] | None,
    image_size: tuple[int, int],
    raw: bool,
    failures: DecodeFailures,
) -> tf.data.Dataset:
    """Unbatched ``(image[, label])`` in the order of ``files``.

    Images are decoded uint8 (``raw``) or resized float32; `after_cache`
    turns them into what the loaders yield. A file that fails to decode is
    left out (``ignore_errors``) and reported by ``failures``: every decoded
    file marks its position as seen, and at the end of a whole pass the
    positions never seen are the files that failed. The functions are
    traced without AutoGraph (plain TensorFlow ops: tracing is most of what
    a loader call costs on a small folder).
    """
    columns = (np.arange(len(files), dtype="int64"), tf.constant(files, tf.string))
    if labels is not None:
        columns += (np.asarray(labels, dtype="int64"),)

    @_plain
    def load(i, path, *label):
        image = decode(path)
        with tf.control_dependencies([failures.mark(i, image)]):
            image = image if raw else resize(image, image_size)
            return (tf.identity(image), *label) if label else tf.identity(image)

    ds = tf.data.Dataset.from_tensor_slices(columns)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE).ignore_errors()
    return ds.concatenate(failures.end_of_pass(ds.element_spec))


def after_cache(
    image_size: tuple[int, int], raw: bool, labelled: bool
) -> Callable | None:
    """Maps `decoded_images`' examples to float32 images (and labels).

    For ``raw`` (uint8) images: resizes them, the same op on the same pixels
    as resizing before the cache. Else None (nothing to do).
    """
    if not raw:
        return None
    if labelled:
        return _plain(lambda image, label: (resize(image, image_size), label))
    return _plain(lambda image: resize(image, image_size))


def decode(path: tf.Tensor) -> tf.Tensor:
    data = tf.io.read_file(path)
    return tf.io.decode_image(data, channels=3, expand_animations=False)


def resize(image: tf.Tensor, image_size: tuple[int, int]) -> tf.Tensor:
    image = tf.image.resize(image, image_size)
    image.set_shape((*image_size, 3))
    return image


def _plain(function: Callable) -> Callable:
    """``function`` traced as written, without AutoGraph's conversion."""
    return tf.autograph.experimental.do_not_convert(function)


class DecodeFailures:
    """Files of one split that failed to decode in the pipeline.

    Each decoded file marks its position in a hash table (`mark`); the end
    of a whole pass (`end_of_pass`) adds the files never marked to
    ``skipped`` (the `LoadedData`'s list), once each, and names them in one
    warning.
    """

    def __init__(self, files: list[str], root: Path, skipped: list[str]) -> None:
        self.files, self.root, self.skipped = files, root, skipped
        self._seen = tf.lookup.experimental.MutableHashTable(
            tf.int64, tf.int64, default_value=0
        )

    def mark(self, position: tf.Tensor, image: tf.Tensor) -> tf.Operation:
        """Marks ``position`` as decoded (run after the decode of ``image``)."""
        with tf.control_dependencies([image]):
            return self._seen.insert(position[None], tf.ones([1], tf.int64))

    def end_of_pass(self, spec) -> tf.data.Dataset:
        """An empty dataset that reports the files not decoded when reached."""
        blank = tf.nest.map_structure(
            lambda s: tf.zeros([d or 1 for d in s.shape], s.dtype), spec
        )

        @_plain
        def report(*example):
            seen, _ = self._seen.export()
            done = tf.numpy_function(self._record, [seen], tf.int64, stateful=True)
            with tf.control_dependencies([done]):
                example = tuple(tf.identity(t) for t in example)
            return example if len(example) > 1 else example[0]

        ds = tf.data.Dataset.from_tensors(blank).map(report)
        return ds.filter(_plain(lambda *_: False))

    def _record(self, seen: np.ndarray) -> np.int64:
        missing = np.setdiff1d(np.arange(len(self.files)), seen)
        names = [relative(self.files[i], self.root) for i in missing]
        new = [name for name in names if name not in self.skipped]
        if new:
            self.skipped.extend(new)
            logger.warning(
                "Skipped %d file(s) in %s that failed to decode (left out of "
                "training; listed in LoadedData.skipped): %s",
                len(new),
                self.root,
                ", ".join(new),
            )
        return np.int64(0)
