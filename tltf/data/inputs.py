"""User data in, batched datasets out: the one place tltf reads what users pass.

Every tltf function that takes data, and the ``fit``, ``evaluate`` and
``predict`` of the models the builders return, turn it into model inputs or
a batched ``(inputs, labels[, sample weights])`` dataset here, with the same
rules:

- strings go in as KerasHub tasks take them: a Python list of ``str``, a
  NumPy unicode (``<U..``), bytes or object array, a pandas ``Series`` or
  ``Index``, a ``tf.Tensor``; a bare ``str`` is one example;
- a `LoadedData` gives its ``train`` (or ``validation``) split;
- a ``tf.data.Dataset`` is used as it is;
- a tuple ``(x, y)`` or ``(x, y, sample_weight)`` of arrays is batched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from tltf.data.base import LoadedData
from tltf.errors import DataError

DEFAULT_BATCH_SIZE = 32

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "as_batched",
    "as_inputs",
    "as_labels",
    "as_list",
    "check_finite",
    "is_string_input",
]


def as_list(value: Any) -> list[Any]:
    """A list from a list-like argument; a bare string is one item.

    ``set_trainable_groups(model, "top")`` means the group ``"top"``, not the
    groups ``"t"``, ``"o"`` and ``"p"``; likewise one callback, one text or
    one class name where a list is expected.

    Args:
        value: A string, another single object, an iterable, or None.

    Returns:
        ``[]`` for None, ``[value]`` for a string or a non-iterable object,
        else ``list(value)``.
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def is_string_input(x: Any) -> bool:
    """Whether ``x`` holds text in a form `as_inputs` converts."""
    if isinstance(x, (str, bytes)):
        return True
    if _is_pandas(x):
        return getattr(x.dtype, "kind", "") in "USO"  # pandas' str dtype is "O".
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "USO"
    if isinstance(x, (list, tuple)):
        texts = [isinstance(item, (str, bytes)) for item in x]
        return any(texts) and all(t or _missing(i) for t, i in zip(texts, x))
    return False


def _missing(item: Any) -> bool:
    """None or NaN: what pandas and lists hold where a text is missing."""
    return item is None or (isinstance(item, float) and item != item)


def as_inputs(x: Any, what: str = "x") -> Any:
    """Model inputs from what a user passes; text becomes an object array.

    Args:
        x: Inputs: arrays, tensors, a dataset, or text in any form listed in
            the module docstring.
        what: How error messages name the argument.

    Returns:
        ``x`` with text as a 1-D NumPy object array (what Keras' ``fit``,
        ``evaluate`` and ``predict`` and ``tf.data`` accept); other inputs
        unchanged.

    Raises:
        DataError: Empty text input.
    """
    if not is_string_input(x) and not (isinstance(x, (list, tuple)) and not x):
        return x
    if isinstance(x, (str, bytes)):
        x = [x]
    array = x.to_numpy(dtype=object) if _is_pandas(x) else np.asarray(x, dtype=object)
    if array.size == 0:
        raise DataError(
            f"{what} is empty: there is nothing to run the model on. Pass at "
            "least one example."
        )
    if array.ndim != 1:
        raise DataError(
            f"{what} must be one string per example (a 1-D list or array). "
            f"Received an array of shape {array.shape}."
        )
    holes = [i for i, item in enumerate(array) if not isinstance(item, (str, bytes))]
    if holes:
        raise DataError(
            f"{what} has {len(holes)} example(s) without a text (the first, example "
            f"{holes[0]}, is {array[holes[0]]!r}). Give every example a string, or "
            "leave those out (pandas: series.dropna(), or fillna(''))."
        )
    if any(isinstance(item, bytes) for item in array[:1]):
        # Keras reads object arrays of str only; bytes are UTF-8 text.
        array = np.array([_text(item) for item in array], dtype=object)
    return array


def _text(item: Any) -> Any:
    return item.decode("utf-8", errors="replace") if isinstance(item, bytes) else item


def check_finite(x: Any, what: str) -> None:
    """Fails clearly when a numeric array holds NaN or inf.

    Args:
        x: Anything; only NumPy float arrays (and dicts of them) are checked.
        what: How the message names the data.

    Raises:
        DataError: A NaN or an infinity in ``x``.
    """
    for array in x.values() if isinstance(x, dict) else [x]:
        if not isinstance(array, np.ndarray) or array.dtype.kind not in "fc":
            continue
        bad = ~np.isfinite(array)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(
                f"{what} holds {int(bad.sum())} NaN or inf value(s) (the first in "
                f"example {row}). Replace them (e.g. np.nan_to_num) or leave those "
                "examples out."
            )


def as_labels(y: Any) -> Any:
    """Labels as an array (lists and pandas objects included); None stays None."""
    if y is None or isinstance(y, (tf.Tensor, tf.data.Dataset)):
        return y
    return y.to_numpy() if _is_pandas(y) else np.asarray(y)


def as_batched(
    data: Any,
    batch_size: int | None = None,
    *,
    split: str = "train",
    what: str = "data",
    shuffle: bool = False,
) -> tf.data.Dataset:
    """A batched ``(inputs, labels[, sample weights])`` dataset from user data.

    Args:
        data: A `LoadedData`, a batched ``tf.data.Dataset``, or a tuple
            ``(x, y)`` / ``(x, y, sample_weight)`` of arrays or lists.
        batch_size: Batch size for arrays; None for `DEFAULT_BATCH_SIZE`.
            Datasets keep their own batching.
        split: ``"train"`` or ``"validation"``: which split of a `LoadedData`.
        what: How error messages name the argument.
        shuffle: Shuffle arrays anew every epoch (as ``model.fit`` does).

    Returns:
        The batched dataset.

    Raises:
        DataError: An unsupported type, a `LoadedData` without that split,
            text without labels, or inputs and labels of different lengths.
    """
    if isinstance(data, LoadedData):
        ds = data.train if split == "train" else data.validation
        if ds is None:
            raise DataError(
                f"{what} has no {split} split. Load it with a validation_split "
                "> 0, or pass the validation data explicitly."
            )
        return ds
    if isinstance(data, tf.data.Dataset):
        return data
    if (
        isinstance(data, (tuple, list))
        and len(data) in (2, 3)
        and not (is_string_input(data))
    ):
        return _from_arrays(data, batch_size or DEFAULT_BATCH_SIZE, what, shuffle)
    raise DataError(
        f"{what} must be a tltf.data.LoadedData, a batched tf.data.Dataset of "
        "(inputs, labels), or a tuple (inputs, labels) of arrays or lists. "
        f"Received: {_describe(data)}"
    )


def as_unlabeled(
    data: Any,
    batch_size: int | None = None,
    *,
    what: str = "unlabeled",
    shuffle: bool = False,
) -> tf.data.Dataset:
    """A batched dataset of inputs alone, from unlabelled data in any form.

    Args:
        data: Inputs (an array or eager tensor, a dict of arrays, text in
            any form `as_inputs` takes), a batched ``tf.data.Dataset`` of inputs or of
            ``(inputs, labels, ...)`` (labels dropped), or a `LoadedData`
            (its training split, labels dropped).
        batch_size: Batch size for arrays; None for `DEFAULT_BATCH_SIZE`.
            Datasets keep their own batching.
        what: How error messages name the argument.
        shuffle: Shuffle arrays anew on every pass.

    Returns:
        The batched dataset of inputs.

    Raises:
        DataError: Empty inputs, or a type that holds no inputs.
    """
    if isinstance(data, LoadedData):
        data = data.train
    if isinstance(data, tf.data.Dataset):
        if isinstance(data.element_spec, tuple):
            return data.map(lambda *element: element[0])
        return data
    if tf.is_tensor(data):  # An eager tensor of pixels or of texts.
        data = data.numpy()
    if is_string_input(data):
        data = as_inputs(data, what)
    if isinstance(data, (list, tuple, np.ndarray, dict)):
        n = len(tf.nest.flatten(data)[0]) if tf.nest.flatten(data) else 0
        if n == 0:
            raise DataError(f"{what} is empty. Pass at least one example.")
        ds = tf.data.Dataset.from_tensor_slices(data)
        if shuffle:
            ds = ds.shuffle(n, reshuffle_each_iteration=True)
        return ds.batch(batch_size or DEFAULT_BATCH_SIZE)
    raise DataError(
        f"{what} must be an array (or dict of arrays) of inputs, a list of "
        "strings or a batched tf.data.Dataset of inputs. Received: "
        f"{_describe(data)}"
    )


def first_batch(ds: tf.data.Dataset, what: str, needs: str) -> Any:
    """The first element of ``ds``, or a `DataError` when it has none.

    Args:
        ds: A batched dataset.
        what: The argument's name, for the error (e.g. ``"train_data"``).
        needs: What to pass instead, for the error.

    Raises:
        DataError: ``ds`` is empty.
    """
    for element in ds.take(1):
        return element
    raise DataError(f"{what} is empty. {needs}")


def _from_arrays(
    data: Sequence[Any], batch_size: int, what: str, shuffle: bool
) -> tf.data.Dataset:
    x, y, *w = data
    parts = (as_inputs(x, f"{what} inputs"), as_labels(y), *map(as_labels, w))
    lengths = {len(part) for part in parts}
    if len(lengths) != 1:
        raise DataError(
            f"{what}: inputs, labels (and sample weights) need one entry per "
            f"example. Received lengths {[len(part) for part in parts]}."
        )
    if 0 in lengths:
        raise DataError(f"{what} is empty. Pass at least one example.")
    ds = tf.data.Dataset.from_tensor_slices(parts)
    if shuffle:
        ds = ds.shuffle(len(parts[1]), reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def _is_pandas(x: Any) -> bool:
    return type(x).__module__.partition(".")[0] == "pandas" and hasattr(x, "to_numpy")


def _describe(data: Any) -> str:
    if isinstance(data, (str, bytes)):
        return f"a single string {data!r:.40}"
    if isinstance(data, (tuple, list)):
        return f"a {type(data).__name__} of {len(data)} items"
    return type(data).__name__
