"""Compare a teacher and its distilled student: quality, size and speed.

`distillation_report` answers "what did distillation cost and buy?": accuracy
and macro F1 of both models on the same examples, how often they agree,
parameter counts, the size of each exported SavedModel on disk, and the
median latency of one example through each model.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf.data.base import LoadedData
from tltf.data.inputs import as_batched
from tltf.errors import ConfigError, DataError
from tltf.evaluation import plots
from tltf.export import export_saved_model
from tltf.files import atomic_path, write_json
from tltf.metrics import MacroF1
from tltf.training.distill.distiller import check_compatible

DEFAULT_LATENCY_RUNS = 20


def distillation_report(
    teacher: keras.Model,
    student: keras.Model,
    data: Any,
    *,
    batch_size: int | None = None,
    latency_runs: int = DEFAULT_LATENCY_RUNS,
    measure_size: bool = True,
    path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Compares teacher and student on ``data``; optionally writes JSON.

    Both models predict the same batches (so a shuffled dataset is fine).
    Examples labelled ``-1`` are left out of accuracy and F1 but count for
    agreement. Size is the bytes on disk of the model exported by
    `tltf.export_saved_model` (a SavedModel with serving signatures) in a
    temporary folder. Latency is the median, in milliseconds, of
    ``latency_runs`` calls of a compiled forward pass on one example, after a
    warm-up call; it measures this machine, now.

    Args:
        teacher: The teacher model (softmax outputs).
        student: The student model (softmax outputs over the same classes).
        data: Batched dataset of ``(inputs, label)``, an ``(x, y)`` tuple of
            arrays, or a `tltf.data.LoadedData` (its validation split, else
            its training split).
        batch_size: Batch size for arrays (default 32).
        latency_runs: Timed calls per model; at least 1.
        measure_size: Export both models to measure their size; False skips
            it (``size_bytes`` is then None).
        path: Where to write the report as JSON, with its plot beside it
            (the same name ending in ``.png``: teacher against student,
            `tltf.evaluation.plots.distillation_comparison`); each file is
            written whole or not at all.

    Returns:
        ``{"teacher": {...}, "student": {...}, "agreement", "num_examples",
        "num_labelled", "ratios": {...}}``; each model's dict has
        ``accuracy``, ``f1``, ``params``, ``trainable_params``,
        ``size_bytes`` and ``latency_ms``; ``ratios`` divides teacher by
        student (``params``, ``size``, ``speedup``).

    Raises:
        ConfigError: ``latency_runs`` is not a positive integer, or teacher
            and student take other inputs or predict other classes.
        DataError: Empty data or data without labelled examples.
        ExportError: A model could not be exported to measure its size
            (pass ``measure_size=False`` to skip it).

    Example:
        >>> report = tltf.distillation_report(teacher, student, (x_val, y_val),
        ...                                   path="report.json")
        >>> report["ratios"]["params"]
        12.5
    """
    if not isinstance(latency_runs, int) or latency_runs < 1:
        raise ConfigError(
            f"latency_runs must be an integer >= 1. Received: {latency_runs!r}"
        )
    check_compatible(teacher, student)
    split = "train"
    if isinstance(data, LoadedData) and data.validation is not None:
        split = "validation"
    labels, probs, example = _predict_both(
        (teacher, student), as_batched(data, batch_size, split=split)
    )
    labelled = labels >= 0
    if not labelled.any():
        raise DataError("data has no labelled examples (all labels are -1).")
    preds = [p.argmax(-1) for p in probs]
    models = {
        role: _model_entry(
            model, labels[labelled], prob[labelled], example, latency_runs, measure_size
        )
        for role, model, prob in zip(("teacher", "student"), (teacher, student), probs)
    }
    report = {
        **models,
        "agreement": float(np.mean(preds[0] == preds[1])),
        "num_examples": int(labels.size),
        "num_labelled": int(labelled.sum()),
        "ratios": _ratios(models["teacher"], models["student"]),
    }
    if path is not None:
        write_json(path, report, sort_keys=True)
        with atomic_path(Path(path).with_suffix(".png")) as temp:
            plots.distillation_comparison(report, temp)
    return report


def _model_entry(
    model: keras.Model,
    labels: np.ndarray,
    probs: np.ndarray,
    example: Any,
    latency_runs: int,
    measure_size: bool,
) -> dict[str, Any]:
    return {
        "accuracy": float(np.mean(probs.argmax(-1) == labels)),
        "f1": _macro_f1(labels, probs),
        "params": int(model.count_params()),
        "trainable_params": int(sum(np.prod(v.shape) for v in model.trainable_weights)),
        "size_bytes": exported_size(model) if measure_size else None,
        "latency_ms": batch1_latency_ms(model, example, latency_runs),
    }


def exported_size(model: keras.Model) -> int:
    """Bytes on disk of ``model`` exported by `tltf.export_saved_model`.

    The export (SavedModel with tltf's serving signatures, unverified) goes
    to a temporary folder that is removed afterwards.

    Raises:
        ExportError: The export failed.
        ConfigError: The model's inputs do not fit a tltf export.
    """
    with tempfile.TemporaryDirectory(prefix="tltf_size_") as folder:
        target = export_saved_model(model, os.path.join(folder, "model"), verify=False)
        return sum(p.stat().st_size for p in Path(target).rglob("*") if p.is_file())


def batch1_latency_ms(model: keras.Model, example: Any, runs: int) -> float:
    """Median milliseconds of a compiled forward pass on one example."""
    forward = tf.function(lambda x: model(x, training=False))
    forward(example)  # Traces and warms up.
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        np.asarray(forward(example))
        times.append((time.perf_counter() - start) * 1000.0)
    return float(statistics.median(times))


def _predict_both(models, ds: tf.data.Dataset):
    labels, probs, example = [], [[] for _ in models], None
    for element in ds:
        if not isinstance(element, tuple) or len(element) != 2:
            raise DataError("data must yield (inputs, label) pairs.")
        x, y = element
        if example is None:
            example = tf.nest.map_structure(lambda t: t[:1], x)
        for out, model in zip(probs, models):
            out.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.reshape(np.asarray(y), (-1,)).astype("int64"))
    if example is None:
        raise DataError("data is empty; the report needs at least one example.")
    return np.concatenate(labels), [np.concatenate(p) for p in probs], example


def _macro_f1(labels: np.ndarray, probs: np.ndarray) -> float:
    metric = MacroF1(probs.shape[-1])
    metric.update_state(labels, probs)
    return float(metric.result())


def _ratios(teacher: dict[str, Any], student: dict[str, Any]) -> dict[str, Any]:
    def ratio(a, b):
        return None if a is None or not b else float(a) / float(b)

    return {
        "params": ratio(teacher["params"], student["params"]),
        "size": ratio(teacher["size_bytes"], student["size_bytes"]),
        "speedup": ratio(teacher["latency_ms"], student["latency_ms"]),
    }
