"""Class labels as users have them (names, integers, whole floats) to class ids.

Every loader that takes labels (`tltf.data.from_arrays`, `tltf.data.from_texts`,
`tltf.data.text_csv`) turns them into ids ``0..n-1`` and ``class_names`` here,
with the same rules:

- names (``"positive"``) become ids in sorted name order, or in the order
  of ``class_names`` when given;
- integers (and floats that are whole numbers, ``1.0``) that are already
  ``0..n-1`` stay as they are; others (``1, 2, 3``; ``-1, 1``) are numbered
  in sorted order, so no class exists that no label names (class names are
  then the values, ``["1", "2", "3"]``);
- with ``class_names``, integers are ids when every one is a valid id
  (``0..len(class_names)-1``), else they must all be names (``"3"``);
- a missing label (None, NaN, an empty string) or a fractional float fails
  with one line that names it.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

from tltf.data.inputs import as_list
from tltf.errors import ConfigError, DataError

logger = logging.getLogger("tltf.data")

__all__ = ["check_distinct", "encode_labels"]


def encode_labels(
    labels: Any, class_names: Sequence[str] | None, source: str
) -> tuple[list[str], np.ndarray]:
    """Class names and int64 class ids for ``labels``.

    Args:
        labels: One label per example: a list, an array or a pandas Series of
            names, integers or whole floats.
        class_names: Names in id order, or None to take them from the labels.
        source: How messages name the data.

    Returns:
        ``(class_names, ids)``.

    Raises:
        ConfigError: The same name twice in ``class_names``.
        DataError: A missing or fractional label, a label that is not one of
            ``class_names``, or labels of several kinds.

    Example:
        >>> encode_labels([1, 2, 3, 2], None, "y")
        (['1', '2', '3'], array([0, 1, 2, 1]))
    """
    names = None if class_names is None else [str(n) for n in as_list(class_names)]
    if names is not None:
        check_distinct(names, source)
    if (
        isinstance(labels, np.ndarray)
        and labels.ndim == 1
        and labels.dtype.kind in "iu"
    ):
        return _encode_integers(labels.astype("int64"), names, source)
    values = _values(labels, source)
    if all(isinstance(v, int) for v in values):
        return _encode_integers(np.asarray(values, "int64"), names, source)
    if names is None:
        names = sorted(set(values))
    return names, _ids_of_names([str(v) for v in values], names, source)


def _encode_integers(
    ints: np.ndarray, names: list[str] | None, source: str
) -> tuple[list[str], np.ndarray]:
    if names is not None:
        if ints.size and ints.min() >= 0 and ints.max() < len(names):
            return names, ints
        as_names = [str(v) for v in ints.tolist()]
        if set(as_names) <= set(names):
            return names, _ids_of_names(as_names, names, source)
        bad = int(ints.max()) if ints.max() >= len(names) else int(ints.min())
        raise DataError(
            f"{source} has label {bad}, but class_names has {len(names)} names "
            f"{_preview(names)} (ids 0..{len(names) - 1}). Pass one name per "
            "class, in id order, or fix the labels."
        )
    distinct, ids = np.unique(ints, return_inverse=True)
    if distinct.size and not np.array_equal(distinct, np.arange(distinct.size)):
        logger.info(
            "%s: labels %s are numbered as classes 0..%d, in order.",
            source,
            _preview(distinct.tolist()),
            distinct.size - 1,
        )
    return [str(v) for v in distinct.tolist()], ids.astype("int64").reshape(-1)


def _ids_of_names(values: list[str], names: list[str], source: str) -> np.ndarray:
    index = {name: i for i, name in enumerate(names)}
    unknown = next((v for v in values if v not in index), None)
    if unknown is not None:
        raise DataError(
            f"{source}: label {unknown!r} is not one of the {len(names)} class "
            f"names {_preview(names)} (nor an id 0..{len(names) - 1}). Fix the "
            "label, or pass class_names= with a name for every label. "
            f"Received: {unknown!r}"
        )
    return np.asarray([index[v] for v in values], "int64")


def _values(labels: Any, source: str) -> list[Any]:
    """Each label as an ``int`` or a stripped ``str``; one kind only."""
    if hasattr(labels, "to_numpy"):  # pandas
        labels = labels.to_numpy()
    array = np.asarray(labels, dtype=object) if not isinstance(labels, list) else None
    if array is not None and array.ndim > 1:
        if array.ndim == 2 and array.shape[1] == 1:
            labels = array[:, 0]
        else:
            raise DataError(
                f"{source}: labels must be one class label per example (1-D). "
                f"Received an array of shape {array.shape}; for one-hot labels "
                "pass their argmax (np.argmax(y, axis=-1))."
            )
    values = [_value(label, i, source) for i, label in enumerate(as_list(labels))]
    kinds = {type(v) for v in values}
    if len(kinds) > 1:
        raise DataError(
            f"{source}: labels mix names and numbers (e.g. {_first(values, str)!r} "
            f"and {_first(values, int)!r}). Use one kind for every label."
        )
    return values


def _value(label: Any, row: int, source: str) -> int | str:
    if isinstance(label, bytes):
        label = label.decode("utf-8", errors="replace")
    if isinstance(label, str):
        text = label.strip()
        if text:
            return int(text) if _is_int(text) else text
    elif isinstance(label, numbers.Integral) and not isinstance(label, bool):
        return int(label)
    elif isinstance(label, numbers.Real) and math.isfinite(label):
        if float(label).is_integer():
            return int(label)
        raise DataError(
            f"{source}: label {label!r} (example {row}) is not a whole number. "
            "Class labels are names or integers; for regression targets build "
            "a tf.data.Dataset of (inputs, targets) yourself."
        )
    elif isinstance(label, (bool, np.bool_)):
        return int(label)
    raise DataError(
        f"{source}: example {row} has no label (received {label!r}). Give every "
        "example a class label, or leave the example out."
    )


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()


def _first(values: list[Any], kind: type) -> Any:
    return next(v for v in values if isinstance(v, kind))


def check_distinct(class_names: Sequence[Any], source: str) -> None:
    """Fails when a name stands twice in ``class_names``: a label, a report
    row, an answer or a served name stands for one class.

    Args:
        class_names: The names given (compared as strings).
        source: How the message names the call.

    Raises:
        ConfigError: A name stands twice.
    """
    names = [str(n) for n in class_names]
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise ConfigError(
            f"{source}: class_names must be distinct; {twice!r} appears "
            f"{names.count(twice)} times. Pass one name per class. Received: "
            f"class_names={_preview(names)}"
        )


def _preview(items: list[Any]) -> str:
    shown = ", ".join(map(repr, items[:6]))
    return f"[{shown}{', ...' if len(items) > 6 else ''}]"
