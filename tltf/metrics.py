"""Precision, recall and F1 that work with integer or one-hot labels.

Keras' own ``Precision``/``Recall`` are binary and ``F1Score`` needs one-hot
labels; tltf models train on integer labels by default. These metrics keep
per-class true positive, false positive and false negative counts, so they are
exact over a whole epoch (not an average of batch values) and give the same
numbers as scikit-learn's ``average="macro"`` (classes that appear in neither
labels nor predictions are left out of the average; a class with no
predictions has precision 0).
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops


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
        self.num_classes = int(num_classes)
        self.multi_label = bool(multi_label)
        self.threshold = float(threshold)
        # Rows: true positives, false positives, false negatives per class;
        # one variable, so a step updates (and an epoch resets) it once.
        self.counts = self.add_variable(
            (3, self.num_classes), initializer="zeros", name="counts"
        )

    @property
    def tp(self):
        return self.counts[0]

    @property
    def fp(self):
        return self.counts[1]

    @property
    def fn(self):
        return self.counts[2]

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = ops.convert_to_tensor(y_pred)
        if self.multi_label:
            true = ops.cast(ops.cast(y_true, "float32") > 0.5, "float32")
            pred = ops.cast(ops.cast(y_pred, "float32") > self.threshold, "float32")
        else:
            y_true = ops.convert_to_tensor(y_true)
            if (
                len(y_true.shape) == len(y_pred.shape)
                and y_true.shape[-1] == (self.num_classes)
                and self.num_classes > 1
            ):
                y_true = ops.argmax(y_true, axis=-1)
            labels = ops.reshape(ops.cast(y_true, "int32"), (-1,))
            true = ops.one_hot(labels, self.num_classes)
            pred = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
            pred = ops.reshape(pred, (-1, self.num_classes))
        hits = true * pred
        if sample_weight is not None:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
            true, pred, hits = true * weight, pred * weight, hits * weight
        tp = ops.sum(hits, axis=0)
        fp = ops.sum(pred, axis=0) - tp
        fn = ops.sum(true, axis=0) - tp
        self.counts.assign_add(ops.stack([tp, fp, fn]))

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))

    def _macro(self, per_class):
        present = ops.cast((self.tp + self.fp + self.fn) > 0, "float32")
        return ops.sum(per_class * present) / ops.maximum(ops.sum(present), 1.0)

    def _precision(self):
        return ops.divide_no_nan(self.tp, self.tp + self.fp)

    def _recall(self):
        return ops.divide_no_nan(self.tp, self.tp + self.fn)

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
        return self._macro(self._precision())


@keras.saving.register_keras_serializable(package="tltf")
class MacroRecall(_ClassCounts):
    """Recall per class, averaged over classes."""

    def __init__(self, num_classes: int, name: str = "recall", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        return self._macro(self._recall())


@keras.saving.register_keras_serializable(package="tltf")
class MacroF1(_ClassCounts):
    """F1 per class (harmonic mean of precision and recall), averaged."""

    def __init__(self, num_classes: int, name: str = "f1", **kwargs: Any):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        p, r = self._precision(), self._recall()
        return self._macro(ops.divide_no_nan(2.0 * p * r, p + r))
