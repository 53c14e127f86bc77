"""Text data: CSV/TSV files with a text and a label column, and Python lists.

Labels may be names (``"positive"``) or integers; ``class_names`` keeps the
names, in sorted order unless given. Rows with an empty text or label are
left out and listed in one warning; a missing file or column, an empty file
and a single-class file fail before training with a clear error. TFDS text
datasets (``imdb_reviews``, ...) load through `tltf.data.tfds_dataset`,
which yields strings for them.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import tensorflow as tf

from tltf.data.base import (
    AUTOTUNE,
    LoadedData,
    check_class_names,
    index_batches,
)
from tltf.data.images import _stratified_split
from tltf.data.inputs import as_list
from tltf.errors import DataError

logger = logging.getLogger(__name__)


def text_csv(
    path: str | os.PathLike,
    *,
    text_column: str = "text",
    label_column: str = "label",
    delimiter: str | None = None,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    validation_split: float = 0.2,
    seed: int = 1337,
) -> LoadedData:
    """Loads a CSV or TSV file with a header row as ``(string, label)`` batches.

    Args:
        path: The file. ``.tsv`` and ``.tab`` files are tab-separated.
        text_column: Header of the text column.
        label_column: Header of the label column.
        delimiter: Field separator; None picks it from the file extension.
        class_names: Label names in label order; None for the sorted
            distinct labels of the file (numeric order for integer labels).
        batch_size: Examples per batch.
        validation_split: Stratified fraction held out for validation.
        seed: Seed of the split and shuffling.

    Returns:
        `LoadedData` with the rows that were left out in ``skipped``
        (``"line <n>"``).

    Raises:
        DataError: The file is missing or empty, a column is missing, a label
            is not in ``class_names``, or there are fewer than two classes.

    Example:
        >>> data = tltf.data.text_csv("reviews.csv", label_column="sentiment")
        >>> data.class_names
        ['negative', 'positive']
    """
    file = Path(path)
    if not file.is_file():
        raise DataError(
            f"Text file {str(file)!r} does not exist. Pass a CSV or TSV file "
            f"with a header row and columns {text_column!r} and {label_column!r}."
        )
    if delimiter is None:
        delimiter = "\t" if file.suffix.lower() in (".tsv", ".tab") else ","
    texts, labels, skipped = _read_rows(file, text_column, label_column, delimiter)
    if skipped:
        logger.warning(
            "Skipped %d row(s) with an empty text or label in %s: %s",
            len(skipped),
            file,
            ", ".join(skipped),
        )
    if not texts:
        raise DataError(
            f"Text file {str(file)!r} has a header but no usable rows. Add rows "
            f"with a text in {text_column!r} and a label in {label_column!r}."
        )
    data = from_texts(
        texts,
        labels,
        class_names=class_names,
        batch_size=batch_size,
        validation_split=validation_split,
        seed=seed,
        source=f"Text file {str(file)!r}",
    )
    data.skipped = skipped
    return data


def from_texts(
    texts: Sequence[str],
    labels: Sequence[str | int],
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int = 32,
    validation_split: float = 0.2,
    seed: int = 1337,
    source: str = "The text list",
) -> LoadedData:
    """Wraps Python lists of texts and labels as batched ``(string, label)``.

    Args:
        texts: The texts.
        labels: One label per text: names or integers.
        class_names: Label names in label order. For names, None means the
            sorted distinct labels; for integers, ``["0", "1", ...]``.
        batch_size: Examples per batch.
        validation_split: Stratified fraction held out for validation.
        seed: Seed of the split and shuffling.
        source: How error messages name the data.

    Returns:
        `LoadedData` over the texts.

    Raises:
        DataError: Lengths differ, the lists are empty, a label is unknown,
            or there are fewer than two classes.

    Example:
        >>> data = tltf.data.from_texts(["good", "bad"], ["pos", "neg"],
        ...                             validation_split=0)
        >>> data.class_names
        ['neg', 'pos']
    """
    texts = [str(t) for t in as_list(texts)]
    labels = as_list(labels)
    if not texts or len(texts) != len(labels):
        raise DataError(
            f"{source}: texts and labels must be non-empty and of equal length. "
            f"Received: len(texts)={len(texts)}, len(labels)={len(labels)}"
        )
    if not 0.0 <= validation_split < 1.0:
        raise DataError(
            f"validation_split must be in [0, 1). Received: {validation_split}"
        )
    names, ids = _encode_labels(labels, class_names, source)
    check_class_names(names, source)
    train_idx, val_idx = _stratified_split(ids, validation_split, seed)
    y = np.asarray(ids, dtype="int64")
    del ids

    def make(idx, training):
        # The texts are held once, as one string tensor; the pipeline moves
        # indices (a new permutation of all of them every epoch) and gathers
        # the batches' texts and labels.
        split_texts = tf.constant([texts[i] for i in idx], tf.string)
        split_labels = tf.constant(y[idx])
        order = index_batches(
            len(idx), batch_size=batch_size, training=training, seed=seed
        )
        return order.map(
            lambda i: (tf.gather(split_texts, i), tf.gather(split_labels, i)),
            num_parallel_calls=AUTOTUNE,
        ).prefetch(AUTOTUNE)

    return LoadedData(
        train=make(train_idx, True),
        validation=make(val_idx, False) if len(val_idx) else None,
        class_names=names,
        num_train=len(train_idx),
        num_validation=len(val_idx),
    )


def _read_rows(file: Path, text_column: str, label_column: str, delimiter: str):
    with open(file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        header = reader.fieldnames
        if not header:
            raise DataError(
                f"Text file {str(file)!r} is empty. It needs a header row with "
                f"columns {text_column!r} and {label_column!r}, then one row per "
                "example."
            )
        missing = [c for c in (text_column, label_column) if c not in header]
        if missing:
            raise DataError(
                f"Text file {str(file)!r} has no column {missing[0]!r}. Its "
                f"columns are {header}; pass text_column= and label_column=. "
                f"Received: text_column={text_column!r}, "
                f"label_column={label_column!r}"
            )
        texts, labels, skipped = [], [], []
        distinct: dict[str, str] = {}  # One string object per label value.
        for row in reader:
            text = (row.get(text_column) or "").strip()
            label = (row.get(label_column) or "").strip()
            if text and label:
                texts.append(text)
                labels.append(distinct.setdefault(label, label))
            else:
                skipped.append(f"line {reader.line_num}")
    return texts, labels, skipped


def _encode_labels(labels, class_names, source: str) -> tuple[list[str], list[int]]:
    """Label names and integer ids for ``labels`` (names or integers)."""
    as_text = [str(label).strip() for label in labels]
    numeric = all(_is_int(label) for label in as_text)
    if class_names is not None:
        names = [str(n) for n in as_list(class_names)]
    elif numeric:
        names = [str(i) for i in range(max(int(v) for v in as_text) + 1)]
    else:
        names = sorted(set(as_text))
    index = {name: i for i, name in enumerate(names)}
    ids = []
    for label in as_text:
        if label in index:
            ids.append(index[label])
        elif numeric and 0 <= int(label) < len(names):
            ids.append(int(label))
        else:
            raise DataError(
                f"{source}: label {label!r} is not one of the class names "
                f"{names}. Fix the label or pass class_names= with every label. "
                f"Received: {label!r}"
            )
    return names, ids


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
