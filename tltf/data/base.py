"""What every tltf loader returns, and the batching every loader shares."""

from __future__ import annotations

import dataclasses
import os
import weakref
from pathlib import Path

import tensorflow as tf

from tltf.errors import DataError

AUTOTUNE = tf.data.AUTOTUNE
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
) -> tf.data.Dataset:
    """Caches, shuffles (training only), batches and prefetches ``ds``.

    Args:
        ds: Unbatched examples.
        batch_size: Examples per batch.
        training: Shuffle every epoch (after the cache, so each epoch differs).
        cache: True caches in memory, a path caches on disk, False not at all.
        shuffle_buffer: Shuffle buffer size.
        seed: Shuffle seed.

    Returns:
        The input pipeline.
    """
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1. Received: {batch_size}")
    if cache is True:
        ds = ds.cache()
    elif cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        ds = ds.cache(str(cache))
    if training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def check_class_names(class_names: list[str], source: str) -> None:
    """Raises a clear error for fewer than two classes."""
    if len(class_names) < 2:
        raise DataError(
            f"{source} has {len(class_names)} class(es) {class_names}; a "
            "classifier needs at least two. Add a folder (or label) per class."
        )
