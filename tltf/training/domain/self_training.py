"""Class-balanced self-training: the adapted model labels part of the target.

After a first adaptation run, the model labels the target inputs it is most
confident about, each class in its share of the source labels (Zou et al.,
ECCV 2018: class-balanced self-training; the balance keeps the confident
examples from all falling into the class the model already prefers). The
second run starts again from the model's starting weights and trains on the
source and those pseudo-labelled target examples, while the adaptation term
keeps aligning the domains.

In the Amazon review trials behind ``benchmarks/domain_adaptation`` (12
binary shifts, 3 seeds, judged on target validation), MMD followed by this
round gained 2.63 points over source-only training against 2.56 for MMD
alone and 1.89 for MCC; the source-only model as the labeller gained 2.15.
Self-training helps from a good start and amplifies the errors of a poor
one, which is why it labels only the most confident half.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from tltf.data.inputs import as_unlabeled
from tltf.errors import DataError

#: Share of the target inputs that get a pseudo-label.
KEEP = 0.5


def source_counts(train: tf.data.Dataset, num_classes: int) -> np.ndarray:
    """Examples per class in a batched ``(inputs, labels[, weights])`` dataset.

    Labels are class indices or one-hot rows. One pass over ``train``.
    """

    def labels(*element):
        y = element[1]
        if y.shape.rank is not None and y.shape.rank > 1 and y.shape[-1] != 1:
            return tf.argmax(y, axis=-1, output_type=tf.int64)
        return tf.cast(tf.reshape(y, [-1]), tf.int64)

    counts = np.zeros(num_classes, dtype=np.int64)
    for y in train.map(labels):
        counts += np.bincount(y.numpy(), minlength=num_classes)[:num_classes]
    return counts


def select_confident(
    probabilities: np.ndarray, shares: np.ndarray, keep: float = KEEP
) -> tuple[np.ndarray, np.ndarray]:
    """Which examples to pseudo-label, and their labels.

    Of ``n`` examples, class ``c`` gets the ``int(keep * n * shares[c])``
    predicted as ``c`` with the highest probability (fewer if fewer are
    predicted as ``c``).

    Args:
        probabilities: ``(n, classes)`` predicted probabilities.
        shares: Each class's share of the source labels (sums to 1).
        keep: Share of the ``n`` examples to label.

    Returns:
        Indices into the examples (sorted) and their pseudo-labels.
    """
    predicted = probabilities.argmax(-1)
    confidence = probabilities.max(-1)
    n = len(predicted)
    chosen = []
    for c, share in enumerate(shares):
        candidates = np.flatnonzero(predicted == c)
        order = candidates[np.argsort(-confidence[candidates], kind="stable")]
        chosen.append(order[: int(keep * n * share)])
    index = np.sort(np.concatenate(chosen)).astype(np.int64)
    return index, predicted[index].astype(np.int64)


def pseudo_labelled(
    model: Any, target: Any, batch_size: int, shares: np.ndarray
) -> tuple[Any, np.ndarray]:
    """The target inputs ``model`` labels with confidence, and their labels.

    Reads the target once and keeps its inputs in memory (the chosen half
    is what the second run trains on).

    Returns:
        The chosen inputs (the structure the target's batches have) and
        their class indices.
    """
    batches = list(as_unlabeled(target, batch_size, what="target", shuffle=False))
    if not batches:
        raise DataError("target is empty. Pass at least one target input.")
    inputs = tf.nest.map_structure(
        lambda *parts: np.concatenate([p.numpy() for p in parts]), *batches
    )
    data = tf.data.Dataset.from_tensor_slices(inputs).batch(batch_size)
    probabilities = np.asarray(model.predict(data, verbose=0))
    index, labels = select_confident(probabilities, shares)
    return tf.nest.map_structure(lambda a: a[index], inputs), labels


def with_pseudo_labels(
    train: tf.data.Dataset,
    inputs: Any,
    labels: np.ndarray,
    batch_size: int,
    source_size: int,
) -> tf.data.Dataset:
    """``train``'s examples and the pseudo-labelled ones, mixed, in batches.

    Each pass draws every example of both once, in a random order; the
    pseudo-labels take the form of the source's labels (indices or one-hot,
    their dtype), and weight 1 when the source carries sample weights.
    """
    spec = train.element_spec
    label_spec = spec[1]
    y = labels
    if label_spec.shape.rank is not None and label_spec.shape.rank > 1:
        width = label_spec.shape[-1]
        y = np.eye(width)[labels] if width and width > 1 else labels[:, None]
    y = y.astype(label_spec.dtype.as_numpy_dtype)
    x = tf.nest.map_structure(
        lambda a, s: a if s.dtype == tf.string else a.astype(s.dtype.as_numpy_dtype),
        inputs,
        spec[0],
    )
    element = (x, y)
    if len(spec) == 3:
        element += (np.ones(len(labels), spec[2].dtype.as_numpy_dtype),)
    pseudo = tf.data.Dataset.from_tensor_slices(element).shuffle(
        len(labels), reshuffle_each_iteration=True
    )
    total = source_size + len(labels)
    mixed = tf.data.Dataset.sample_from_datasets(
        [train.unbatch(), pseudo],
        weights=[source_size / total, len(labels) / total],
        stop_on_empty_dataset=False,
    )
    return mixed.batch(batch_size).prefetch(tf.data.AUTOTUNE)
