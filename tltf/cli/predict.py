"""``tltf predict``: top classes from a ``.keras`` model or a tltf export.

What the arguments are is decided by what the model takes:

- an image model classifies image files: a file that does not exist or does
  not decode is skipped and reported, so one bad file does not lose the
  others; when none can be classified the run fails with one line naming
  them;
- a text model classifies each argument as a text. An argument that names
  an existing file or folder, or ends in an image extension
  (``photo.jpg``), is refused with one line before anything is classified:
  it is almost surely a path given to the wrong model, not a text.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf.cli.loading import load_model
from tltf.cli.parsing import ArgumentsError
from tltf.data.images import IMAGE_EXTENSIONS
from tltf.errors import ConfigError, DataError
from tltf.evaluation.predictions import calibration_of
from tltf.export import read_export_metadata

IMAGE_FORMATS = "JPEG, PNG, GIF or BMP"


@dataclasses.dataclass
class Predictions:
    """What ``tltf predict`` has to say.

    Attributes:
        lines: ``"<input>: <class> 0.912, <class> 0.051"`` per classified input.
        skipped: ``"<file>: <reason>"`` per input that could not be read.
    """

    lines: list[str]
    skipped: list[str]


@dataclasses.dataclass
class _Classifier:
    """A loaded model: its input kind, class names and batch function."""

    modality: str  # "image" or "text"
    names: list[str] | None
    classify: Callable[[list], np.ndarray]  # encoded images or texts -> probs
    threshold: float | None = None  # "unknown" below it (tltf.calibrate_rejection)


def predict(options: dict[str, Any]) -> int:
    """``tltf predict``: top classes for image files or texts."""
    result = predict_inputs(
        options["model"], options["inputs"], options.get("top_k", 1)
    )
    for line in result.lines:
        print(line)
    for line in result.skipped:
        print(f"tltf predict: skipped {line}", file=sys.stderr)
    if result.skipped:
        print(
            f"tltf predict: {len(result.lines)} classified, "
            f"{len(result.skipped)} skipped.",
            file=sys.stderr,
        )
    return 0


def predict_inputs(
    model_path: str | os.PathLike | None, inputs: Sequence[str], top_k: int = 1
) -> Predictions:
    """Classifies image files or texts and formats one line per input.

    Args:
        model_path: A ``.keras`` model (or its run folder) or an export folder.
        inputs: Image file paths for image models, texts for text models.
        top_k: Classes to show per input, most likely first.

    Returns:
        The `Predictions`: a line per classified input, and the image files
        that were skipped with the reason.

    Raises:
        ConfigError: No inputs, no model, or an unknown kind of model.
        DataError: No input could be classified (each named with its reason).
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1. Received: {top_k}")
    inputs = list(inputs)
    if not inputs:
        raise ConfigError(
            "Nothing to classify: pass image files, or texts in quotes for a "
            'text model, after the flags, e.g. tltf predict --model m.keras "hello".'
        )
    classifier = _load(model_path)
    items, skipped = _readable(inputs, classifier.modality)
    if not items:
        raise DataError(
            f"None of the {len(inputs)} input(s) could be classified: "
            f"{'; '.join(skipped)}. This model takes {classifier.modality}s."
        )
    probabilities = classifier.classify([value for _, value in items])
    names = classifier.names or [str(i) for i in range(probabilities.shape[-1])]
    lines = [
        f"{name}: {_unknown(probs, classifier.threshold)}{_ranked(probs, names, top_k)}"
        for (name, _), probs in zip(items, probabilities)
    ]
    return Predictions(lines=lines, skipped=skipped)


def _unknown(probs: np.ndarray, threshold: float | None) -> str:
    """``"unknown (below 0.700): "`` when the top probability is under threshold."""
    if threshold is None or probs.max() >= threshold:
        return ""
    return f"unknown (below {threshold:.3f}): "


def _ranked(probs: np.ndarray, names: Sequence[str], top_k: int) -> str:
    order = np.argsort(-probs)[:top_k]
    return ", ".join(f"{names[i]} {probs[i]:.3f}" for i in order)


def _readable(inputs: list[str], modality: str) -> tuple[list, list[str]]:
    """``([(input, value)], skipped)``: texts as they are, images' bytes."""
    if modality == "text":
        check_texts(inputs)
        return [(text, text) for text in inputs], []
    items, skipped = [], []
    for file in inputs:
        try:
            items.append((file, read_image(file)))
        except DataError as err:
            skipped.append(f"{file}: {err}")
    return items, skipped


def check_texts(inputs: list[str]) -> None:
    """Refuses arguments that are paths, not texts (see the module's rule)."""
    paths = [
        t
        for t in inputs
        if Path(t).exists() or Path(t).suffix.lower() in IMAGE_EXTENSIONS
    ]
    if paths:
        raise ArgumentsError(
            f"{paths[0]!r} is a file name, but this model classifies text: pass "
            "the texts themselves in quotes, or a model trained on images"
            + (f" ({len(paths)} such arguments)." if len(paths) > 1 else ".")
        )


def read_image(file: str) -> bytes:
    """The bytes of an image file, checked to decode as an image.

    Raises:
        DataError: The file does not exist, is a folder, or does not decode.
    """
    path = Path(file)
    if path.is_dir():
        raise DataError("is a folder; pass image files")
    if not path.is_file():
        raise DataError("does not exist")
    data = path.read_bytes()
    try:
        tf.io.decode_image(data, channels=3, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        raise DataError(f"is not an image tltf can read ({IMAGE_FORMATS})") from None
    return data


# --- models ---


def _load(model_path: str | os.PathLike | None) -> _Classifier:
    path = Path(model_path) if model_path is not None else None
    if path is not None and (path / "saved_model.pb").is_file():
        return _from_export(path)
    return _from_keras(model_path)


def _from_export(path: Path) -> _Classifier:
    meta = read_export_metadata(path)
    if meta.get("custom_ops"):
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    if meta["modality"] not in ("image", "text"):
        raise ConfigError(
            "tltf predict reads image files or texts; this export takes "
            f"{meta['modality']} tensors. Call its signature from Python."
        )
    key = "image_bytes" if meta["modality"] == "image" else "text"

    def classify(values: list) -> np.ndarray:
        return serve(**{key: tf.constant(values)})["probabilities"].numpy()

    threshold = (meta.get("rejection") or {}).get("threshold")
    return _Classifier(meta["modality"], meta["class_names"], classify, threshold)


def _from_keras(model_path: str | os.PathLike | None) -> _Classifier:
    model, names = load_model(model_path)
    threshold = calibration_of(model)[1]
    spec = model.inputs[0]
    if spec.dtype == "string":

        def classify(values: list) -> np.ndarray:
            x = tf.constant(values)
            x = tf.reshape(x, (-1, 1)) if len(spec.shape) == 2 else x
            return keras.ops.convert_to_numpy(model(x, training=False))

        return _Classifier("text", names, classify, threshold)
    size, channels = tuple(int(d) for d in spec.shape[1:3]), int(spec.shape[-1])

    def classify_images(values: list) -> np.ndarray:
        x = tf.stack([_decode(data, size, channels) for data in values])
        return keras.ops.convert_to_numpy(model(x, training=False))

    return _Classifier("image", names, classify_images, threshold)


def _decode(data: bytes, size: tuple[int, int], channels: int):
    image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    return tf.image.resize(image, size)
