"""What every tltf loader returns, and the batching every loader shares."""

from __future__ import annotations

import dataclasses
import os
import weakref
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf

from tltf import arguments
from tltf.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
_INDEX_BATCH_BUFFER = 64  # Batches of indices shuffled on top of a permutation.
_CACHE_CHUNK = 64  # Examples per entry of a disk cache (see `disk_cache`).
# The class names of the datasets a LoadedData holds, so that a model can check
# its number of classes against ``model.fit(data.train)`` before training.
_CLASS_NAMES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


@dataclasses.dataclass
class LoadedData:
    """Batched training and validation data with the names of the classes.

    Attributes:
        train: Batched ``(inputs, label)`` dataset, shuffled each epoch.
        validation: Batched validation dataset, or None without a split.
        class_names: Label names; ``class_names[i]`` is the name of label ``i``.
        skipped: Files that could not be read and were left out.
        num_train: Number of training examples.
        num_validation: Number of validation examples.
    """

    train: tf.data.Dataset
    validation: tf.data.Dataset | None
    class_names: list[str]
    skipped: list[str] = dataclasses.field(default_factory=list)
    num_train: int = 0
    num_validation: int = 0

    def __post_init__(self) -> None:
        for split in (self.train, self.validation):
            if isinstance(split, tf.data.Dataset):
                _CLASS_NAMES[split] = list(self.class_names)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


def class_names_of(dataset: tf.data.Dataset) -> list[str] | None:
    """The class names of a `LoadedData` split; None for any other dataset."""
    try:
        return _CLASS_NAMES.get(dataset)
    except TypeError:  # Not weakly referenceable: not one of ours.
        return None


def finish(
    ds: tf.data.Dataset,
    *,
    batch_size: int,
    training: bool,
    cache: bool | str | os.PathLike = True,
    shuffle_buffer: int = 1000,
    seed: int | None = None,
    prepare: Callable | None = None,
) -> tf.data.Dataset:
    """Caches, shuffles (training only), prepares, batches and prefetches ``ds``.

    Args:
        ds: Unbatched examples.
        batch_size: Examples per batch.
        training: Shuffle every epoch (after the cache, so each epoch differs).
        cache: True caches in memory, a path caches on disk (file prefix),
            False not at all (`tltf.data.budget.plan_cache` decides
            ``"auto"`` for the loaders).
        shuffle_buffer: Shuffle buffer size.
        seed: Shuffle seed.
        prepare: Function applied to every example after the cache and the
            shuffle, in parallel (e.g. resizing images cached as uint8).

    Returns:
        The input pipeline.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1. Received: {batch_size}")
    if cache is True:
        ds = ds.cache()
    elif cache:
        ds = disk_cache(ds, cache)
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if prepare is not None:
        ds = ds.map(prepare, num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def disk_cache(ds: tf.data.Dataset, prefix: str | os.PathLike) -> tf.data.Dataset:
    """``ds.cache(prefix)``, stored in chunks of examples.

    TensorFlow's file cache keeps an index entry in memory for every tensor
    it stores (about 0.6 KB each), so a cache of single examples would take
    memory in proportion to the data. Chunks are padded batches (examples of
    different shapes, e.g. decoded images, carry their own shape and are cut
    back to it after the cache), unbatched again in the same order.

    Args:
        ds: Unbatched examples.
        prefix: File prefix of the cache (its folder is created).

    Returns:
        The same examples, with the element spec of ``ds``.
    """
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    structure = ds.element_spec
    specs = tf.nest.flatten(structure)
    varying = [i for i, spec in enumerate(specs) if not spec.shape.is_fully_defined()]

    def pack(*example):
        flat = tf.nest.flatten(example[0] if len(example) == 1 else example)
        return (*flat, *(tf.shape(flat[i]) for i in varying))

    def unpack(*flat):
        tensors = list(flat[: len(specs)])
        for shape, i in zip(flat[len(specs) :], varying):
            tensors[i] = tf.slice(tensors[i], tf.zeros_like(shape), shape)
            tensors[i].set_shape(specs[i].shape)
        return tf.nest.pack_sequence_as(structure, tensors)

    plain = tf.autograph.experimental.do_not_convert
    chunks = ds.map(plain(pack)).padded_batch(_CACHE_CHUNK).cache(str(prefix))
    return chunks.unbatch().map(plain(unpack), num_parallel_calls=AUTOTUNE)


def index_batches(
    n: int, *, batch_size: int, training: bool, seed: int | None = None
) -> tf.data.Dataset:
    """Batches of the indices ``0..n-1``, for examples held in tensors.

    A map gathers each batch's examples by these indices, so the shuffle
    never holds examples (`finish`'s buffer would hold copies of them).
    Training: a new permutation of all ``n`` every epoch (seeded), whose
    batches are also shuffled in a small buffer; else in order.

    Args:
        n: Number of examples.
        batch_size: Indices per batch (the last batch may be short).
        training: Reshuffle every epoch.
        seed: Seed of the permutations.

    Returns:
        A dataset of int64 vectors, prefetched.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1. Received: {batch_size}")
    full = n // batch_size * batch_size

    def batches(order: tf.Tensor) -> tf.data.Dataset:
        ds = tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[:full], [-1, batch_size])
        )
        if full < n:
            ds = ds.concatenate(tf.data.Dataset.from_tensors(order[full:]))
        return ds

    if not training:
        return batches(tf.range(n, dtype=tf.int64)).prefetch(AUTOTUNE)

    def permutation(draw: tf.Tensor) -> tf.Tensor:
        key = tf.stack([draw, tf.constant(seed or 0, tf.int64)])
        indices = tf.range(n, dtype=tf.int64)
        return tf.random.experimental.stateless_shuffle(indices, seed=key)

    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    ds = draws.take(1).flat_map(lambda draw: batches(permutation(draw)))
    ds = ds.shuffle(_INDEX_BATCH_BUFFER, seed=seed, reshuffle_each_iteration=True)
    steps = tf.data.experimental.assert_cardinality(-(-n // batch_size))
    return ds.apply(steps).prefetch(AUTOTUNE)


def existing_image_folder(path: str | os.PathLike, wanted: str) -> Path:
    """``path`` as a ``Path`` when it is a folder; else a clear error.

    Args:
        path: What the user passed.
        wanted: What the folder should hold, for the message.

    Raises:
        ConfigError: ``path`` is not a path (None, a number).
        DataError: ``path`` does not exist, or is a file.
    """
    root = arguments.path("directory", path)
    if root.is_dir():
        return root
    if root.exists():
        raise DataError(
            f"Image folder {str(root)!r} is a file, not a folder. Pass {wanted}."
        )
    raise DataError(f"Image folder {str(root)!r} does not exist. Pass {wanted}.")


def check_class_names(class_names: list[str], source: str) -> None:
    """Raises a clear error for fewer than two classes."""
    if len(class_names) < 2:
        raise DataError(
            f"{source} has {len(class_names)} class(es) {class_names}; a "
            "classifier needs at least two. Add a folder (or label) per class."
        )
