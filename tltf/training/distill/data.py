"""Input pipelines for distillation: teacher outputs computed once, or per batch.

`prepare_distillation_data` turns the user's data into batched datasets of
``(inputs, {"labels": int labels, "teacher_probs": probabilities})`` (cached
teacher outputs) or ``(inputs, {"labels": int labels})`` (the teacher runs on
every batch). A label of ``-1`` marks an example without a label.

Caching runs the teacher once over the data exactly as given, keeping each
batch's inputs, labels and teacher outputs together, so a shuffled input
pipeline still pairs every example with its own teacher output; the cached
examples are then reshuffled every epoch. Without caching, labels are not
checked up front, and unlabeled batches are interleaved at random with the
labelled ones.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf.data.base import LoadedData
from tltf.data.inputs import as_batched, as_unlabeled, first_batch
from tltf.errors import ConfigError, DataError

UNLABELED = -1


def prepare_distillation_data(
    teacher: keras.Model,
    train_data: Any,
    val_data: Any = None,
    *,
    unlabeled: Any = None,
    num_classes: int = 0,
    batch_size: int | None = None,
    cache_teacher: bool = True,
    seed: int | None = None,
) -> tuple[tf.data.Dataset, tf.data.Dataset | None]:
    """Builds the training and validation pipelines of a `tltf.Distiller`.

    Args:
        teacher: The frozen teacher (runs with ``training=False``).
        train_data: Batched dataset of ``(inputs, label)``, an ``(x, y)``
            tuple of arrays, or a `LoadedData`.
        val_data: Validation data in the same forms, or None (a
            `LoadedData`'s own validation split is used then).
        unlabeled: Extra inputs: an array, or a batched dataset of inputs or
            of ``(inputs, ...)``.
        num_classes: Number of classes, to check labels; 0 skips the check.
        batch_size: Batch size of arrays and of cached data; None keeps the
            size of ``train_data``'s first batch.
        cache_teacher: Compute teacher probabilities once, up front.
        seed: Seed of the per-epoch shuffle.

    Returns:
        ``(train, validation)``; validation is None without validation data.

    Raises:
        ConfigError: Caching an infinite dataset, or a bad batch size.
        DataError: Empty data, unsupported data types, or bad labels.
    """
    if isinstance(train_data, LoadedData):
        val_data = train_data.validation if val_data is None else val_data
        train_data = train_data.train
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(
            f"batch_size must be an integer >= 1. Received: {batch_size!r}"
        )
    train = as_batched(train_data, batch_size, what="train_data")
    size = batch_size or first_batch_size(train, "train_data")
    extra = None if unlabeled is None else as_unlabeled(unlabeled, size)
    val = None
    if val_data is not None:
        val = as_batched(val_data, size, split="validation", what="val_data")
    if not cache_teacher:
        return _streamed(train, extra, seed), _streamed(val, None, None)
    check = {"teacher": teacher, "num_classes": num_classes}
    parts = [_label_with_teacher(ds=train, what="train_data", **check)]
    if extra is not None:
        parts.append(_label_with_teacher(ds=extra, what="unlabeled", **check))
    cached_train = _cached(_concat(parts), size, shuffle=True, seed=seed)
    cached_val = None
    if val is not None:
        arrays = _label_with_teacher(ds=val, what="val_data", **check)
        cached_val = _cached(arrays, size, shuffle=False, seed=None)
    return cached_train, cached_val


def first_batch_size(ds: tf.data.Dataset, what: str) -> int:
    """The number of examples in ``ds``'s first batch."""
    element = first_batch(ds, what, "Distillation needs at least one batch.")
    leaf = tf.nest.flatten(element)[0]
    return max(int(leaf.shape[0]), 1) if leaf.shape.rank else 1


# --- teacher outputs computed once ---
def _label_with_teacher(
    teacher: keras.Model, ds: tf.data.Dataset, num_classes: int, what: str
) -> dict[str, Any]:
    if ds.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ConfigError(
            f"{what} repeats forever, so teacher outputs cannot be computed "
            "once. Pass a finite dataset, or cache_teacher=False. "
            "Received: an infinite dataset."
        )
    xs, ys, ps = [], [], []
    for element in ds:
        x, y = (element, None) if what == "unlabeled" else _split(element, what)
        probs = np.asarray(teacher.predict_on_batch(x), "float32")
        n = probs.shape[0]
        ys.append(
            np.full(n, UNLABELED, "int32")
            if y is None
            else _labels(y, n, num_classes, what)
        )
        xs.append(tf.nest.map_structure(lambda t: t.numpy(), x))
        ps.append(probs)
    if not xs:
        raise DataError(f"{what} is empty; distillation needs at least one batch.")
    return {
        "x": _concat_inputs(xs),
        "labels": np.concatenate(ys),
        "teacher_probs": np.concatenate(ps),
    }


def _split(element: Any, what: str) -> tuple[Any, Any]:
    if not isinstance(element, tuple) or len(element) != 2:
        raise DataError(
            f"{what} must yield (inputs, label) pairs. Received: an element "
            f"with structure {tf.nest.map_structure(lambda t: t.shape, element)}"
        )
    return element


def _labels(y: Any, n: int, num_classes: int, what: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    integral = np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)
    )
    if y.shape != (n,) or not integral:
        raise DataError(
            f"{what} labels must be integer class ids, one per example (-1 for "
            f"unlabeled). Received: labels of shape {y.shape} and dtype {y.dtype}."
        )
    y = y.astype("int32")
    bad = (y < UNLABELED) | ((y >= num_classes) if num_classes else False)
    if np.any(bad):
        raise DataError(
            f"{what} labels must be in [0, {num_classes}) or -1 for unlabeled. "
            f"Received: {sorted(set(y[bad].tolist()))[:10]}"
        )
    return y


def _concat_inputs(batches: list[Any]) -> Any:
    return tf.nest.map_structure(lambda *leaves: np.concatenate(leaves), *batches)


def _concat(parts: list[dict[str, Any]]) -> dict[str, Any]:
    if len(parts) == 1:
        return parts[0]
    try:
        tf.nest.assert_same_structure(parts[0]["x"], parts[1]["x"])
        return tf.nest.map_structure(lambda *leaves: np.concatenate(leaves), *parts)
    except (ValueError, TypeError) as error:
        raise DataError(
            "unlabeled inputs must have the same structure, shape (after the "
            f"batch axis) and dtype as train_data's inputs. Received: {error}"
        ) from error


def _cached(
    arrays: dict[str, Any], batch_size: int, *, shuffle: bool, seed: int | None
) -> tf.data.Dataset:
    targets = {"labels": arrays["labels"], "teacher_probs": arrays["teacher_probs"]}
    ds = tf.data.Dataset.from_tensor_slices((arrays["x"], targets))
    if shuffle:
        ds = ds.shuffle(len(arrays["labels"]), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --- teacher runs on every batch ---
def _streamed(
    ds: tf.data.Dataset | None,
    extra: tf.data.Dataset | None,
    seed: int | None,
) -> tf.data.Dataset | None:
    if ds is None:
        return None
    ds = ds.map(lambda x, y: (x, {"labels": tf.reshape(tf.cast(y, tf.int32), [-1])}))
    if extra is None:
        return ds
    extra = extra.map(lambda x: (x, {"labels": tf.fill(_batch_of(x), UNLABELED)}))
    # Labelled and unlabeled batches interleave at random, in proportion to
    # their numbers, in a new order every epoch. Mixing whole batches (not
    # examples) needs no shuffle buffer; the loss is a per-example sum anyway.
    sizes = [int(d.cardinality()) for d in (ds, extra)]
    known = min(sizes) >= 0
    mixed = tf.data.Dataset.sample_from_datasets(
        [ds, extra],
        weights=[float(n) for n in sizes] if known and sum(sizes) else None,
        seed=seed,
        stop_on_empty_dataset=False,
        rerandomize_each_iteration=True,
    )
    if known:  # Tells Keras the epoch's length.
        mixed = mixed.apply(tf.data.experimental.assert_cardinality(sum(sizes)))
    return mixed.prefetch(tf.data.AUTOTUNE)


def _batch_of(x: Any) -> tf.Tensor:
    return tf.shape(tf.nest.flatten(x)[0])[:1]
