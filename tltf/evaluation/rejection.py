"""Out-of-scope rejection: calibrate a classifier, then let it say "unknown".

`calibrate_rejection` fits a softmax temperature and picks a confidence
threshold on validation data, and stores both on the model's `tltf.Head`
(its config: they survive a ``.keras`` save and load). From then on:

- ``model.predict`` returns temperature-scaled probabilities (the top class
  is unchanged: scaling by one temperature keeps the order);
- `predict_classes`, `tltf.evaluate` and every export (`tltf.export_saved_model`,
  `tltf.export_litert`) answer class index -1, name ``"unknown"``, where the
  top probability is below the threshold, and record the threshold.

Training again changes the model's confidence: calibrate again after it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from tltf import arguments
from tltf.data.inputs import as_list
from tltf.data.labels import check_distinct
from tltf.errors import ConfigError, DataError
from tltf.evaluation import calibration as calib
from tltf.evaluation.predictions import (
    calibration_of,
    labelled_predictions,
    unlabelled_predictions,
)
from tltf.heads import Head
from tltf.model import head_of, require_model

#: In-scope accuracy the out-of-scope rule may give up (1 point).
DEFAULT_MAX_ACCURACY_DROP = 0.01


@dataclasses.dataclass
class CalibrationResult:
    """What `calibrate_rejection` chose, and how it did on the validation data.

    Attributes:
        temperature: The softmax temperature (1.0 when not fitted).
        threshold: Top probability below which the model answers "unknown".
        rule: ``"target_precision"`` or ``"out_of_scope"``.
        ece_before: Expected calibration error (15 bins) before scaling.
        ece_after: The same after temperature scaling.
        accuracy: In-scope validation accuracy without rejection.
        accuracy_with_rejection: The same with rejected examples counted as
            wrong.
        coverage: Share of in-scope validation examples answered with a class.
        precision: Share of answered in-scope examples answered correctly.
        out_of_scope_recall: Share of ``oos_data`` answered "unknown"; None
            without ``oos_data``.
        reliability_before: `tltf.calibration.reliability_bins` of the
            validation data before scaling (what `tltf.plots.reliability_diagram`
            draws).
        reliability_after: The same after temperature scaling.
    """

    temperature: float
    threshold: float
    rule: str
    ece_before: float
    ece_after: float
    accuracy: float
    accuracy_with_rejection: float
    coverage: float
    precision: float
    out_of_scope_recall: float | None = None
    reliability_before: dict[str, list[float]] = dataclasses.field(default_factory=dict)
    reliability_after: dict[str, list[float]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready data."""
        return dataclasses.asdict(self)


@dataclasses.dataclass
class ClassPredictions:
    """Class answers of a classifier, with "unknown" below its threshold.

    Attributes:
        probabilities: ``(n, classes)`` (temperature-scaled if calibrated).
        class_index: ``(n,)`` top class, or -1 for "unknown".
        class_name: Name per row; ``"unknown"`` for -1.
    """

    probabilities: np.ndarray
    class_index: np.ndarray
    class_name: list[str]


def calibrate_rejection(
    model: keras.Model,
    validation_data: Any,
    *,
    target_precision: float | None = None,
    oos_data: Any = None,
    max_accuracy_drop: float | None = None,
    temperature: bool = True,
) -> CalibrationResult:
    """Fits a temperature and a rejection threshold on validation data.

    First the softmax temperature ``T`` that minimises the negative
    log-likelihood of the validation labels is fitted (probabilities become
    ``softmax(log(p) / T)``); then the threshold on the top (scaled)
    probability is picked by one of two rules:

    - ``target_precision``: the lowest threshold at which the in-scope
      examples the model still answers are right at least this often.
    - ``oos_data`` (out-of-scope examples, inputs only): the threshold that
      answers "unknown" on the most of them while in-scope accuracy (a
      rejected example counts as wrong) stays within ``max_accuracy_drop``
      (default 0.01, one point) of the accuracy without rejection; ties go
      to the lowest threshold. This is the CLINC150 setting: pick the
      threshold on ``val`` plus ``oos_val``, report on the test splits.

    Both are stored on the model's `tltf.Head` (in place; see the module
    docstring for what changes). A model that was calibrated before is
    recalibrated from its raw probabilities.

    Args:
        model: A multiclass tltf model (softmax `tltf.Head`).
        validation_data: Labelled in-scope data, as `tltf.evaluate` takes it
            (a `tltf.data.LoadedData`'s validation split, a dataset of
            ``(inputs, labels)``, or an ``(x, y)`` tuple).
        target_precision: Precision to reach, in (0, 1].
        oos_data: Out-of-scope inputs without labels: a list or array (texts
            or images), or a dataset of them.
        max_accuracy_drop: With ``oos_data``: in-scope accuracy the threshold
            may cost, in [0, 1).
        temperature: Fit the temperature; False keeps ``T = 1``.

    Returns:
        The `CalibrationResult`.

    Raises:
        ConfigError: Neither or both of ``target_precision`` and
            ``oos_data``, a value out of range, or a model that is not a
            multiclass tltf classifier.
        DataError: Empty data, or no threshold reaches ``target_precision``.

    Example:
        >>> result = tltf.calibrate_rejection(model, (x_val, y_val),
        ...                                   target_precision=0.95)
        >>> tltf.predict_classes(model, x_new).class_name
        ['cats', 'unknown']
    """
    _check_arguments(target_precision, oos_data, max_accuracy_drop)
    if not isinstance(temperature, (bool, np.bool_)):
        raise ConfigError(
            "temperature must be True (fit the softmax temperature) or False "
            f"(keep T = 1). Received: temperature={temperature!r}"
        )
    head = _multiclass_head(model)
    old = (head.temperature, head.rejection_threshold)
    set_calibration(model, 1.0, None)
    try:
        labels, raw, _ = labelled_predictions(model, validation_data, "validation_data")
        raw_oos = None if oos_data is None else unlabelled_predictions(model, oos_data)
    except Exception:
        set_calibration(model, *old)
        raise
    t = calib.fit_temperature(raw, labels) if temperature else 1.0
    probabilities = calib.apply_temperature(raw, t)
    if oos_data is None:
        threshold = _precision_threshold(probabilities, labels, target_precision)
        rule, oos_recall = "target_precision", None
    else:
        oos = calib.apply_temperature(raw_oos, t)
        drop = (
            DEFAULT_MAX_ACCURACY_DROP
            if max_accuracy_drop is None
            else max_accuracy_drop
        )
        threshold = calib.threshold_for_out_of_scope(probabilities, labels, oos, drop)
        rule = "out_of_scope"
        oos_recall = float(np.mean(calib.answer(oos, threshold) < 0))
    set_calibration(model, t, threshold)
    return _result(probabilities, raw, labels, t, threshold, rule, oos_recall)


def predict_classes(
    model: keras.Model,
    x: Any,
    *,
    class_names: Sequence[str] | None = None,
    batch_size: int | None = None,
) -> ClassPredictions:
    """Class answers of a classifier: index -1 / ``"unknown"`` below its threshold.

    ``model.predict`` returns probabilities, as Keras users expect; this is
    the answer an export gives, for the Keras model.

    Args:
        model: A multiclass classifier (a calibrated tltf model answers
            "unknown"; any other answers its top class).
        x: Inputs, as ``model.predict`` takes them (texts as lists or arrays).
        class_names: Class names in label order; ``"0", "1", ...`` if None.
        batch_size: Passed to ``predict``.

    Returns:
        The `ClassPredictions`.

    Raises:
        ConfigError: ``class_names`` does not fit the model's outputs.
    """
    require_model(model)
    if batch_size is not None:
        arguments.count("batch_size", batch_size)
    check_distinct(as_list(class_names), "predict_classes")
    probabilities = np.asarray(model.predict(x, batch_size=batch_size, verbose=0))
    n = probabilities.shape[-1]
    names = [str(c) for c in as_list(class_names)] or [str(i) for i in range(n)]
    if len(names) != n:
        raise ConfigError(
            f"The model has {n} outputs but {len(names)} class names were "
            f"given. Received: class_names={names}"
        )
    index = calib.answer(probabilities, calibration_of(model)[1])
    labels = [names[i] if i >= 0 else calib.UNKNOWN_NAME for i in index]
    return ClassPredictions(probabilities, index, labels)


def set_calibration(
    model: keras.Model, temperature: float, threshold: float | None
) -> None:
    """Stores a temperature and threshold on the model's head.

    The model's next predict or evaluate traces its step again with a new
    temperature (`tltf.traced`; the threshold is not in the graph).
    """
    head_of(model).set_calibration(temperature, threshold)


# --- helpers ---


def _check_arguments(target_precision, oos_data, max_accuracy_drop) -> None:
    if (target_precision is None) == (oos_data is None):
        raise ConfigError(
            "Pass exactly one of target_precision= (e.g. 0.95: the precision "
            "the answers must reach) or oos_data= (out-of-scope inputs). "
            f"Received: target_precision={target_precision!r}, oos_data="
            f"{'None' if oos_data is None else type(oos_data).__name__}"
        )
    if target_precision is not None and not (
        arguments.is_number(target_precision) and 0.0 < target_precision <= 1.0
    ):
        raise ConfigError(
            f"target_precision must be in (0, 1]. Received: {target_precision!r}"
        )
    if max_accuracy_drop is not None and oos_data is None:
        raise ConfigError(
            "max_accuracy_drop applies to the oos_data rule only; with "
            "target_precision leave it out."
        )
    if max_accuracy_drop is not None:
        arguments.fraction("max_accuracy_drop", max_accuracy_drop)


def _multiclass_head(model: keras.Model) -> Head:
    head = head_of(model)
    if head.task != "multiclass":
        raise ConfigError(
            f"calibrate_rejection needs a multiclass (softmax) model; "
            f"'{model.name}' is a {head.task} model. Rejection by confidence "
            "applies to one-of-n classifiers."
        )
    return head


def _precision_threshold(probabilities, labels, target: float) -> float:
    threshold = calib.threshold_for_precision(probabilities, labels, target)
    if threshold is None:
        raise DataError(
            f"No threshold reaches precision {target} on the validation data: "
            "even the most confident answers are wrong too often. Lower "
            "target_precision, or train the model further."
        )
    return threshold


def _result(probabilities, raw, labels, t, threshold, rule, oos_recall):
    answers = calib.answer(probabilities, threshold)
    answered = answers >= 0
    correct = answers == labels
    return CalibrationResult(
        temperature=t,
        threshold=threshold,
        rule=rule,
        ece_before=calib.expected_calibration_error(raw, labels),
        ece_after=calib.expected_calibration_error(probabilities, labels),
        accuracy=float(np.mean(raw.argmax(-1) == labels)),
        accuracy_with_rejection=float(np.mean(correct)),
        coverage=float(np.mean(answered)),
        precision=float(correct.sum() / max(answered.sum(), 1)),
        out_of_scope_recall=oos_recall,
        reliability_before=calib.reliability_bins(raw, labels),
        reliability_after=calib.reliability_bins(probabilities, labels),
    )
