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
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tensorflow as tf

from tltf import arguments
from tltf.data.base import (
    AUTOTUNE,
    LoadedData,
    check_class_names,
    index_batches,
)
from tltf.data.images import _stratified_split
from tltf.data.inputs import as_list
from tltf.data.labels import encode_labels
from tltf.errors import ConfigError, DataError

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
    encoding: str = "utf-8",
) -> LoadedData:
    """Loads a CSV or TSV file with a header row as ``(string, label)`` batches.

    Args:
        path: The file. ``.tsv`` and ``.tab`` files are tab-separated.
        text_column: Header of the text column.
        label_column: Header of the label column.
        delimiter: Field separator; None picks it from the file extension.
        class_names: Label names in label order; None for the sorted
            distinct labels of the file (numeric order for integer labels:
            labels ``1, 2, 3`` are classes ``0, 1, 2``; `tltf.data.labels`).
        batch_size: Examples per batch.
        validation_split: Stratified fraction held out for validation.
        seed: Seed of the split and shuffling.
        encoding: The file's text encoding. A UTF-8 byte-order mark (Excel's
            "CSV UTF-8") is skipped.

    Returns:
        `LoadedData` with the rows that were left out in ``skipped``
        (``"line <n>"``).

    Raises:
        DataError: The file is missing (or a folder), empty or not text in
            ``encoding``, a column is missing, a label is not in
            ``class_names``, or there are fewer than two classes.

    Example:
        >>> data = tltf.data.text_csv("reviews.csv", label_column="sentiment")
        >>> data.class_names
        ['negative', 'positive']
    """
    file = arguments.path("path", path)
    _check_columns(text_column, label_column, delimiter, encoding)
    if not file.is_file():
        state = "is a folder, not a file" if file.is_dir() else "does not exist"
        raise DataError(
            f"Text file {str(file)!r} {state}. Pass a CSV or TSV file "
            f"with a header row and columns {text_column!r} and {label_column!r}."
        )
    if delimiter is None:
        delimiter = "\t" if file.suffix.lower() in (".tsv", ".tab") else ","
    texts, labels, skipped = _read_rows(
        file, (text_column, label_column), delimiter, encoding
    )
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
        labels: One label per text: names or integers (see
            `tltf.data.labels`).
        class_names: Label names in label order. None: the sorted distinct
            labels (integers in numeric order; ``0..n-1`` stay as they are).
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
    batch_size = arguments.count("batch_size", batch_size)
    validation_split = arguments.fraction("validation_split", validation_split)
    seed = arguments.seed(seed)
    texts = _texts(texts, source)
    labels = as_list(labels)
    if not texts or len(texts) != len(labels):
        raise DataError(
            f"{source}: texts and labels must be non-empty and of equal length. "
            f"Received: len(texts)={len(texts)}, len(labels)={len(labels)}"
        )
    names, y = encode_labels(labels, class_names, source)
    check_class_names(names, source)
    train_idx, val_idx = _stratified_split(y, validation_split, seed)

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


def _check_columns(
    text_column: Any, label_column: Any, delimiter: Any, encoding: Any
) -> None:
    """`text_csv`'s column names, delimiter and encoding, before the file is read."""
    for name, value in (("text_column", text_column), ("label_column", label_column)):
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"{name} must be the name of a column of the file's header (a "
                f"string). Received: {name}={value!r}"
            )
    if text_column == label_column:
        raise ConfigError(
            "text_column and label_column name the same column, so every text "
            "would be its own label. Pass the label column's name as "
            f"label_column=. Received: text_column={text_column!r}, "
            f"label_column={label_column!r}"
        )
    if delimiter is not None and not (
        isinstance(delimiter, str) and len(delimiter) == 1
    ):
        raise ConfigError(
            "delimiter must be one character (',' or '\\t'), or None to pick it "
            f"from the file's suffix. Received: delimiter={delimiter!r}"
        )
    if not isinstance(encoding, str) or not encoding:
        raise ConfigError(
            "encoding must be the name of a text encoding, such as 'utf-8', "
            f"'latin-1' or 'cp1252'. Received: encoding={encoding!r}"
        )


def _texts(texts: Any, source: str) -> list[str]:
    """The texts as ``str``; a missing one (None, NaN) fails clearly."""
    items = as_list(texts.tolist() if hasattr(texts, "tolist") else texts)
    out = []
    for row, text in enumerate(items):
        if isinstance(text, str):
            out.append(text)
        elif isinstance(text, bytes):
            out.append(text.decode("utf-8", "replace"))
        elif text is None or (isinstance(text, float) and math.isnan(text)):
            raise DataError(
                f"{source}: text {row} is missing ({text!r}). Give every example "
                "a text, or leave the example out."
            )
        elif isinstance(text, (list, tuple, dict, set)):
            raise DataError(
                f"{source}: texts must be one string per example (a 1-D list or "
                f"array); text {row} is a {type(text).__name__}: {text!r:.60}. "
                "Join or flatten the texts first."
            )
        else:
            out.append(str(text))
    return out


def _read_rows(file: Path, columns: tuple[str, str], delimiter: str, encoding: str):
    """Texts, labels and skipped lines of a CSV file (a BOM is skipped)."""
    if encoding.lower().replace("_", "-") in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    try:
        with open(file, newline="", encoding=encoding) as f:
            return _rows(csv.DictReader(f, delimiter=delimiter), file, *columns)
    except UnicodeDecodeError as err:
        raise DataError(
            f"Text file {str(file)!r} is not {encoding.removesuffix('-sig')} text "
            f"(it holds byte {err.object[err.start : err.start + 1]!r}). Save it "
            "as UTF-8 (Excel: 'CSV UTF-8'), or pass its encoding "
            "(encoding='latin-1', 'cp1252', ...)."
        ) from None
    except LookupError:
        raise ConfigError(
            f"Unknown text encoding {encoding!r}; pass a name Python knows, such "
            f"as 'utf-8', 'latin-1' or 'cp1252'. Received: encoding={encoding!r}"
        ) from None


def _rows(reader: csv.DictReader, file: Path, text_column: str, label_column: str):
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
