"""Evaluation reports: per-class and macro metrics, confusion matrix, plots.

`evaluate` runs a classifier over labelled data and returns an
`EvaluationReport`: accuracy, precision, recall and F1 per class and macro
averaged, and the confusion matrix. With ``output_dir`` it also writes
``report.json``, ``confusion_matrix.png`` and, given the training History,
``training_curves.png`` with the unfreezing stages marked.

For a model calibrated by `tltf.calibrate_rejection` the report also holds
the expected calibration error before and after temperature scaling and the
examples answered ``"unknown"`` (they count as wrong for accuracy and
recall, and are left out of the confusion matrix); with ``oos_data`` it
reports the share of out-of-scope examples answered ``"unknown"``.

Macro averages follow `tltf.metrics` and scikit-learn's ``average="macro"``:
classes that occur neither in the labels nor in the predictions are left out,
and a class that is never predicted has precision 0.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from tltf import arguments
from tltf import files as files_io
from tltf.data.inputs import as_list
from tltf.data.labels import check_distinct
from tltf.errors import ConfigError, DataError
from tltf.evaluation import calibration as calib
from tltf.evaluation.predictions import (
    calibration_of,
    labelled_predictions,
    unlabelled_predictions,
)
from tltf.model import require_model
from tltf.runs import REPORT_FILE

CONFUSION_FILE = "confusion_matrix.png"
CURVES_FILE = "training_curves.png"


@dataclasses.dataclass
class EvaluationReport:
    """Classification metrics of a model on a labelled set.

    Attributes:
        class_names: Name of each label, in label order.
        num_examples: Examples evaluated.
        accuracy: Fraction of examples whose top class is the label.
        precision: Precision per class.
        recall: Recall per class.
        f1: F1 per class.
        support: Examples per class in the labels.
        macro: Macro averages ``{"precision", "recall", "f1"}``.
        confusion_matrix: ``matrix[i][j]`` counts label ``i`` predicted ``j``.
        files: Files written, by kind (``report``, ``confusion_matrix``,
            ``training_curves``).
        ece: Expected calibration error (15 bins) of the model's
            probabilities; None when not computed (`classification_metrics`).
        calibration: For a temperature-scaled model: ``{"temperature",
            "ece_before", "ece_after"}``; None otherwise.
        rejection: For a model with a rejection threshold: ``{"threshold",
            "num_unknown", "accuracy_without_rejection"}``, plus
            ``"num_out_of_scope"`` and ``"out_of_scope_recall"`` (share
            answered unknown) given ``oos_data``; None otherwise.
    """

    class_names: list[str]
    num_examples: int
    accuracy: float
    precision: list[float]
    recall: list[float]
    f1: list[float]
    support: list[int]
    macro: dict[str, float]
    confusion_matrix: list[list[int]]
    files: dict[str, str] = dataclasses.field(default_factory=dict)
    ece: float | None = None
    calibration: dict[str, float] | None = None
    rejection: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data, per-class metrics keyed by name."""
        per_class = {
            name: {
                "precision": self.precision[i],
                "recall": self.recall[i],
                "f1": self.f1[i],
                "support": self.support[i],
            }
            for i, name in enumerate(self.class_names)
        }
        return {
            "num_examples": self.num_examples,
            "accuracy": self.accuracy,
            "macro": self.macro,
            "per_class": per_class,
            "class_names": self.class_names,
            "confusion_matrix": self.confusion_matrix,
            "ece": self.ece,
            "calibration": self.calibration,
            "rejection": self.rejection,
        }

    def summary(self) -> str:
        """A plain-text table of the per-class and macro metrics."""
        width = max([len(n) for n in self.class_names] + [9])
        lines = [f"{'class':<{width}}  precision  recall     f1  support"]
        for i, name in enumerate(self.class_names):
            lines.append(
                f"{name:<{width}}  {self.precision[i]:9.3f}  {self.recall[i]:6.3f}"
                f"  {self.f1[i]:5.3f}  {self.support[i]:7d}"
            )
        m = self.macro
        lines.append(
            f"{'macro avg':<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}"
            f"  {m['f1']:5.3f}  {self.num_examples:7d}"
        )
        lines.append(f"accuracy {self.accuracy:.3f} on {self.num_examples} examples")
        return "\n".join(lines + self._calibration_lines())

    def _calibration_lines(self) -> list[str]:
        lines = []
        if self.calibration:
            c = self.calibration
            lines.append(
                f"calibration: temperature {c['temperature']:.3f}, ECE "
                f"{c['ece_before']:.3f} before, {c['ece_after']:.3f} after"
            )
        elif self.ece is not None:
            lines.append(f"ECE {self.ece:.3f} (15 bins)")
        if self.rejection:
            r = self.rejection
            lines.append(
                f"rejection: threshold {r['threshold']:.3f}, {r['num_unknown']} "
                f"answered {calib.UNKNOWN_NAME!r}; accuracy without rejection "
                f"{r['accuracy_without_rejection']:.3f}"
            )
            if "out_of_scope_recall" in r:
                lines.append(
                    f"out-of-scope: {r['out_of_scope_recall']:.3f} of "
                    f"{r['num_out_of_scope']} answered {calib.UNKNOWN_NAME!r}"
                )
        return lines


def classification_metrics(
    labels: Sequence[int] | np.ndarray,
    predictions: Sequence[int] | np.ndarray,
    class_names: Sequence[str],
) -> EvaluationReport:
    """Computes the report from integer labels and predicted classes.

    Args:
        labels: True class of each example.
        predictions: Predicted class of each example; -1 (`"unknown"`, a
            rejected example) counts as wrong and is left out of the
            confusion matrix.
        class_names: Name of each class; its length is the number of classes.

    Returns:
        The `EvaluationReport` (no files written).

    Raises:
        DataError: Empty or unequal inputs, or labels outside the classes.

    Example:
        >>> r = classification_metrics([0, 0, 1], [0, 1, 1], ["a", "b"])
        >>> r.accuracy, r.precision
        (0.6666666666666666, [1.0, 0.5])
    """
    y, p = np.asarray(labels, "int64").ravel(), np.asarray(predictions, "int64").ravel()
    n = len(class_names)
    if y.size == 0 or y.size != p.size:
        raise DataError(
            f"Need equal, non-empty labels and predictions. Received: "
            f"{y.size} labels, {p.size} predictions."
        )
    if y.min() < 0 or y.max() >= n:
        raise DataError(
            f"Labels must lie in [0, {n - 1}] for {n} class names. Received: "
            f"labels from {y.min()} to {y.max()}. Pass the class_names the "
            "model was trained with."
        )
    if p.size and (p.max() >= n or p.min() < calib.UNKNOWN_INDEX):
        raise DataError(
            f"Predictions must lie in [0, {n - 1}], or be -1 for unknown. "
            f"Received: predictions from {p.min()} to {p.max()}."
        )
    answered = p != calib.UNKNOWN_INDEX
    matrix = np.zeros((n, n), dtype="int64")
    np.add.at(matrix, (y[answered], p[answered]), 1)
    tp = np.diag(matrix).astype("float64")
    predicted, actual = matrix.sum(axis=0), np.bincount(y, minlength=n)
    precision = np.divide(tp, predicted, out=np.zeros(n), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros(n), where=actual > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n), where=denom > 0)
    present = (predicted + actual) > 0
    macro = {
        "precision": float(precision[present].mean()),
        "recall": float(recall[present].mean()),
        "f1": float(f1[present].mean()),
    }
    return EvaluationReport(
        class_names=[str(c) for c in class_names],
        num_examples=int(y.size),
        accuracy=float(tp.sum() / y.size),
        precision=precision.tolist(),
        recall=recall.tolist(),
        f1=f1.tolist(),
        support=actual.astype(int).tolist(),
        macro=macro,
        confusion_matrix=matrix.astype(int).tolist(),
    )


def evaluate(
    model: keras.Model,
    data: Any,
    *,
    class_names: Sequence[str] | None = None,
    output_dir: str | os.PathLike | None = None,
    history: keras.callbacks.History | Mapping[str, Sequence[float]] | None = None,
    overwrite: bool = False,
    oos_data: Any = None,
) -> EvaluationReport:
    """Evaluates a classifier and optionally writes a JSON report and plots.

    Args:
        model: A multiclass classifier (softmax outputs).
        data: A `tltf.data.LoadedData` (its validation split, or its training
            split when it has none), a batched ``tf.data.Dataset`` of
            ``(inputs, labels)``, or an ``(inputs, labels)`` tuple of arrays.
        class_names: Class names in label order; defaults to the data's, or
            ``"0", "1", ...``.
        output_dir: Folder for ``report.json``, ``confusion_matrix.png`` and
            ``training_curves.png``; None writes nothing.
        history: The ``History`` returned by ``fit`` / `tltf.fine_tune`, or its
            ``.history`` dict. Stage changes logged by `tltf.StagedUnfreezing`
            are marked on the curves and listed in the report.
        overwrite: Replace a ``report.json`` already in ``output_dir``. By
            default an existing report is kept and `ConfigError` is raised
            before anything is computed, so a report is never replaced by
            accident.
        oos_data: Out-of-scope inputs (no labels: a list or array of texts
            or images, or a dataset of them) for a model with a rejection
            threshold: the report gives the share answered ``"unknown"``.

    Returns:
        The `EvaluationReport`; ``report.files`` lists what was written.

    Raises:
        ConfigError: The model is not a multiclass classifier, or
            ``output_dir`` already holds a report and ``overwrite`` is False.
        DataError: The data is empty or its labels do not fit the classes.

    Example:
        >>> report = tltf.evaluate(model, data, output_dir="runs/eval")
        >>> report.macro["f1"]
        0.93
    """
    require_model(model)
    check_output_dir(output_dir, overwrite)
    check_distinct(as_list(class_names), "evaluate")
    labels, probabilities, data_names = labelled_predictions(model, data)
    num_classes = probabilities.shape[-1]
    names = as_list(class_names) or data_names or [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ConfigError(
            f"The model has {num_classes} outputs but {len(names)} class names "
            f"were given. Received: class_names={names}"
        )
    temperature, threshold = calibration_of(model)
    if oos_data is not None and threshold is None:
        raise ConfigError(
            "oos_data needs a model with a rejection threshold; call "
            "tltf.calibrate_rejection(model, validation_data, ...) first."
        )
    answers = calib.answer(probabilities, threshold)
    report = classification_metrics(labels, answers, names)
    report.ece = calib.expected_calibration_error(probabilities, labels)
    if temperature != 1.0:
        raw = calib.apply_temperature(probabilities, 1.0 / temperature)
        report.calibration = {
            "temperature": temperature,
            "ece_before": calib.expected_calibration_error(raw, labels),
            "ece_after": report.ece,
        }
    if threshold is not None:
        report.rejection = _rejection(model, labels, probabilities, threshold)
        if oos_data is not None:
            oos = calib.answer(unlabelled_predictions(model, oos_data), threshold)
            report.rejection["num_out_of_scope"] = int(oos.size)
            report.rejection["out_of_scope_recall"] = float(
                np.mean(oos == calib.UNKNOWN_INDEX)
            )
    if output_dir is not None:
        report.files = _write(report, Path(output_dir), history)
    return report


def _rejection(model, labels, probabilities, threshold) -> dict[str, Any]:
    answers = calib.answer(probabilities, threshold)
    return {
        "threshold": threshold,
        "num_unknown": int(np.sum(answers == calib.UNKNOWN_INDEX)),
        "accuracy_without_rejection": float(
            np.mean(probabilities.argmax(axis=-1) == labels)
        ),
    }


# --- files ---


def check_output_dir(output_dir: str | os.PathLike | None, overwrite: bool) -> None:
    """Refuses to replace an existing report unless ``overwrite``.

    Raises:
        ConfigError: ``output_dir`` holds a ``report.json`` (or is a file).
    """
    if output_dir is None:
        return
    folder = arguments.path("output_dir", output_dir)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(
            f"output_dir {str(folder)!r} is a file; pass a folder for the report."
        )
    if (folder / REPORT_FILE).exists() and not overwrite:
        raise ConfigError(
            f"{str(folder / REPORT_FILE)!r} already exists. Pass another "
            "output_dir (--output), or overwrite=True (--overwrite) to replace it."
        )


def _write(report: EvaluationReport, folder: Path, history: Any) -> dict[str, str]:
    from tltf.evaluation import plots

    folder.mkdir(parents=True, exist_ok=True)
    files = {"report": str(folder / REPORT_FILE)}
    logs = history_dict(history)
    plots.confusion_matrix(report, folder / CONFUSION_FILE)
    files["confusion_matrix"] = str(folder / CONFUSION_FILE)
    if logs:
        plots.training_curves(logs, folder / CURVES_FILE)
        files["training_curves"] = str(folder / CURVES_FILE)
    content = report.to_dict()
    if logs:
        content["history"] = logs
        content["stages"] = plots.stage_changes(logs)
    # Names within the folder, so that the report still holds when the folder
    # moves (a run is written beside its folder and swapped in, tltf.runs).
    content["files"] = {kind: Path(path).name for kind, path in files.items()}
    files_io.write_json(folder / REPORT_FILE, content, default=_jsonable)
    return files


def history_dict(history: Any) -> dict[str, list[Any]]:
    """The per-epoch logs of a ``History`` (or the dict itself) as lists."""
    if history is None:
        return {}
    logs = getattr(history, "history", history)
    if not isinstance(logs, Mapping):
        raise ConfigError(
            "history must be the History returned by fit (or its .history "
            f"dict). Received: {type(history)}"
        )
    return {str(k): [_jsonable(v) for v in values] for k, values in logs.items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if hasattr(value, "numpy"):
        return np.asarray(value).tolist()
    if isinstance(value, (str, int, float, bool, list, dict)) or value is None:
        return value
    return str(value)
