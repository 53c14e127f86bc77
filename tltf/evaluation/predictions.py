"""The model's probabilities on user data, for evaluation and calibration.

`labelled_predictions` runs a multiclass classifier over labelled data (what
`tltf.evaluate` and `tltf.calibrate_rejection` read), `unlabelled_predictions`
over inputs alone (out-of-scope examples), and `calibration_of` reads the
temperature and rejection threshold a tltf head carries.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf.data.base import LoadedData, class_names_of
from tltf.data.inputs import as_batched, as_inputs
from tltf.errors import ConfigError, DataError
from tltf.model import check_data, parts_of

EVAL_BATCH_SIZE = 64


def calibration_of(model: keras.Model) -> tuple[float, float | None]:
    """``(temperature, rejection threshold)`` of a tltf model's head.

    Models without a tltf `Head` give ``(1.0, None)``.
    """
    head = parts_of(model).head
    if head is None:
        return 1.0, None
    return head.temperature, head.rejection_threshold


def labelled_predictions(
    model: keras.Model, data: Any, what: str = "the evaluation data"
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """The labels, the model's probabilities and the data's class names.

    Args:
        model: A multiclass classifier.
        data: As `evaluate` takes it (a `tltf.data.LoadedData`'s held-out
            split, a dataset of ``(inputs, labels)`` or an ``(x, y)`` tuple).
        what: How errors name the data.

    Returns:
        ``(labels (n,), probabilities (n, classes) as float64, class names
        or None)``.

    Raises:
        ConfigError: Not a multiclass model.
        DataError: Empty or unlabelled data, or labels that do not fit.
    """
    check_data(model, data, what)
    dataset, data_names = _as_dataset(data)
    labels, probabilities = _predict(model, dataset)
    return labels, probabilities, data_names


def unlabelled_predictions(model: keras.Model, data: Any) -> np.ndarray:
    """The model's probabilities on inputs without labels.

    Args:
        model: A classifier.
        data: A list or array of inputs (texts as `TransferModel.predict`
            takes them), or a dataset of input batches (or of tuples whose
            first item is the inputs).

    Returns:
        ``(n, classes)`` probabilities as float64.

    Raises:
        DataError: No examples.
    """
    if isinstance(data, tf.data.Dataset):
        batches = [b[0] if isinstance(b, (tuple, list)) else b for b in data]
        outputs = [np.asarray(model.predict_on_batch(as_inputs(b))) for b in batches]
    else:
        x = as_inputs(data, "oos_data")
        empty = x is None or len(x) == 0
        outputs = [] if empty else [model.predict(x, batch_size=64, verbose=0)]
    if not outputs or sum(len(o) for o in outputs) == 0:
        raise DataError("The out-of-scope data is empty. Pass at least one input.")
    return np.concatenate(outputs).astype("float64")


def _as_dataset(data: Any) -> tuple[tf.data.Dataset, list[str] | None]:
    """The held-out split (validation, else train) and the data's class names."""
    if isinstance(data, LoadedData):
        split = "validation" if data.validation is not None else "train"
        return as_batched(data, split=split), list(data.class_names)
    dataset = as_batched(data, EVAL_BATCH_SIZE, what="evaluation data")
    return dataset, class_names_of(dataset)


def _predict(model: keras.Model, dataset: tf.data.Dataset):
    _check_multiclass(model)
    labels, outputs = [], []
    for batch in dataset:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError(
                "evaluate needs labelled data: a dataset of (inputs, labels) batches."
            )
        x, y = batch[0], batch[1]
        outputs.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.asarray(y).reshape(-1))
    if not labels or sum(len(y) for y in labels) == 0:
        raise DataError("The evaluation data is empty. Pass at least one example.")
    return np.concatenate(labels), np.concatenate(outputs).astype("float64")


def _check_multiclass(model: keras.Model) -> None:
    head = parts_of(model).head
    task = head.task if head is not None else "multiclass"
    if task != "multiclass" or model.outputs[0].shape[-1] < 2:
        raise ConfigError(
            f"evaluate reports classification metrics of multiclass models; "
            f"'{model.name}' is a {task} model with "
            f"{model.outputs[0].shape[-1]} output(s). Use model.evaluate for it."
        )
