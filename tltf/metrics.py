"""Precision, recall and F1 that work with integer or one-hot labels.

Keras' own ``Precision``/``Recall`` are binary and ``F1Score`` needs one-hot
labels; tltf models train on integer labels by default. These metrics keep
per-class true positive, false positive and false negative counts, so they are
exact over a whole epoch (not an average of batch values) and give the same
numbers as scikit-learn's ``average="macro"`` (classes that appear in neither
labels nor predictions are left out of the average; a class with no
predictions has precision 0).

They are on every tltf model by default, so they are written for a cheap
training step: TensorFlow ops (tracing them costs a fraction of the same
``keras.ops``), and one count per batch shared by the three metrics.
"""

from __future__ import annotations

import threading
from typing import Any

import keras
import tensorflow as tf

from tltf import arguments


class _ClassCounts(keras.metrics.Metric):
    """Accumulates per-class TP/FP/FN for multi-class or multi-label outputs.

    Args:
        num_classes: Number of classes (output units).
        multi_label: Treat outputs as independent sigmoids, thresholded.
        threshold: Decision threshold for multi-label outputs.
        name: Metric name.
        **kwargs: Standard metric arguments.
    """

    def __init__(
        self,
        num_classes: int,
        multi_label: bool = False,
        threshold: float = 0.5,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = arguments.count("num_classes", num_classes)
        self.multi_label = bool(multi_label)
        self.threshold = arguments.fraction("threshold", threshold, one=True)
        # Rows: true positives, false positives, false negatives per class;
        # one variable, so a step updates (and an epoch resets) it once.
        self.counts = self.add_variable(
            (3, self.num_classes), initializer="zeros", name="counts"
        )

    @property
    def tp(self) -> tf.Tensor:
        return tf.convert_to_tensor(self.counts)[0]

    @property
    def fp(self) -> tf.Tensor:
        return tf.convert_to_tensor(self.counts)[1]

    @property
    def fn(self) -> tf.Tensor:
        return tf.convert_to_tensor(self.counts)[2]

    def update_state(self, y_true, y_pred, sample_weight=None):
        settings = (self.num_classes, self.multi_label, self.threshold)
        inputs = (y_true, y_pred, sample_weight)
        counts = _LAST_BATCH.lookup(inputs, settings)
        if counts is None:
            counts = _class_counts(*inputs, *settings)
            _LAST_BATCH.remember(inputs, settings, counts)
        self.counts.assign_add(counts)

    def reset_state(self):
        self.counts.assign(tf.zeros(self.counts.shape, self.counts.dtype))

    def _per_class(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """Per-class precision and recall, and whether each class occurred."""
        tp, fp, fn = tf.unstack(tf.convert_to_tensor(self.counts))
        occurred = tf.cast(tp + fp + fn > 0, tp.dtype)
        return (
            tf.math.divide_no_nan(tp, tp + fp),
            tf.math.divide_no_nan(tp, tp + fn),
            occurred,
        )

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "multi_label": self.multi_label,
            "threshold": self.threshold,
        }


@keras.saving.register_keras_serializable(package="tltf")
class MacroPrecision(_ClassCounts):
    """Precision per class, averaged over classes."""

    def __init__(self, num_classes: int, name: str = "precision", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        precision, _, occurred = self._per_class()
        return _macro(precision, occurred)


@keras.saving.register_keras_serializable(package="tltf")
class MacroRecall(_ClassCounts):
    """Recall per class, averaged over classes."""

    def __init__(self, num_classes: int, name: str = "recall", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        _, recall, occurred = self._per_class()
        return _macro(recall, occurred)


@keras.saving.register_keras_serializable(package="tltf")
class MacroF1(_ClassCounts):
    """F1 per class (harmonic mean of precision and recall), averaged."""

    def __init__(self, num_classes: int, name: str = "f1", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        p, r, occurred = self._per_class()
        return _macro(tf.math.divide_no_nan(2.0 * p * r, p + r), occurred)


def _macro(per_class: tf.Tensor, occurred: tf.Tensor) -> tf.Tensor:
    """The mean over the classes that occurred."""
    total = tf.reduce_sum(per_class * occurred)
    return total / tf.maximum(tf.reduce_sum(occurred), 1.0)


def _class_counts(y_true, y_pred, sample_weight, num_classes, multi_label, threshold):
    """One batch's true positive, false positive and false negative counts.

    Returns:
        A ``(3, num_classes)`` float32 tensor.
    """
    y_pred = tf.convert_to_tensor(y_pred)
    if multi_label:
        true = tf.cast(tf.cast(y_true, tf.float32) > 0.5, tf.float32)
        pred = tf.cast(tf.cast(y_pred, tf.float32) > threshold, tf.float32)
    else:
        y_true = tf.convert_to_tensor(y_true)
        if (
            y_true.shape.rank == y_pred.shape.rank
            and y_true.shape[-1] == num_classes
            and num_classes > 1
        ):
            y_true = tf.argmax(y_true, axis=-1)
        labels = tf.reshape(tf.cast(y_true, tf.int32), [-1])
        true = tf.one_hot(labels, num_classes)
        pred = tf.one_hot(tf.reshape(tf.argmax(y_pred, axis=-1), [-1]), num_classes)
    hits = true * pred
    if sample_weight is not None:
        weight = tf.reshape(tf.cast(sample_weight, tf.float32), [-1, 1])
        true, pred, hits = true * weight, pred * weight, hits * weight
    tp = tf.reduce_sum(hits, axis=0)
    fp = tf.reduce_sum(pred, axis=0) - tp
    fn = tf.reduce_sum(true, axis=0) - tp
    return tf.stack([tp, fp, fn])


class _LastBatch(threading.local):
    """The last batch's counts, for the next metric given the same batch.

    Compiled together, precision, recall and F1 receive the very same label,
    prediction and weight objects in a step: the first metric computes the
    counts, the others reuse them, so a step traces and runs that once. Only
    the very same tensors (``is``; tensors are immutable), in the same graph
    and with the same settings, match, so a reused count is the one the
    inputs would give.
    """

    entry: tuple | None = None

    def lookup(self, inputs: tuple, settings: tuple) -> tf.Tensor | None:
        entry = self.entry
        if (
            entry is not None
            and entry[1] == settings
            and entry[2] is tf.compat.v1.get_default_graph()
            and all(a is b for a, b in zip(entry[0], inputs))
        ):
            return entry[3]
        return None

    def remember(self, inputs: tuple, settings: tuple, counts: tf.Tensor) -> None:
        # Tensors only: an array could change in place between two metrics.
        if all(x is None or isinstance(x, tf.Tensor) for x in inputs):
            self.entry = (inputs, settings, tf.compat.v1.get_default_graph(), counts)


_LAST_BATCH = _LastBatch()
