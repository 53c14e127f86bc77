"""``tltf predict``: top classes from a ``.keras`` model or a tltf export."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tltf.errors import ConfigError, DataError


def predict_inputs(
    model_path: str | os.PathLike | None, inputs: Sequence[str], top_k: int = 1
) -> list[str]:
    """Classifies image files or texts and formats one line per input.

    Args:
        model_path: A ``.keras`` model (or its run folder) or an export folder.
        inputs: Image file paths for image models, texts for text models.
        top_k: Classes to show per input, most likely first.

    Returns:
        Lines ``"<input>: <class> 0.912, <class> 0.051"``.

    Raises:
        ConfigError: No model, or an unknown kind of model.
        DataError: An image file that does not exist.
    """
    if top_k < 1:
        raise ConfigError(f"--top-k must be at least 1. Received: {top_k}")
    path = Path(model_path) if model_path is not None else None
    if path is not None and (path / "saved_model.pb").is_file():
        probabilities, names = _from_export(path, inputs)
    else:
        probabilities, names = _from_keras(model_path, inputs)
    lines = []
    for text, probs in zip(inputs, probabilities):
        order = np.argsort(-probs)[:top_k]
        ranked = ", ".join(f"{names[i]} {probs[i]:.3f}" for i in order)
        lines.append(f"{text}: {ranked}")
    return lines


def _from_export(path: Path, inputs: Sequence[str]):
    import tensorflow as tf

    from tltf.export import read_export_metadata

    meta = read_export_metadata(path)
    if meta.get("custom_ops"):
        import tensorflow_text  # noqa: F401  (registers the tokenizer's ops)
    loaded = tf.saved_model.load(str(path))
    serve = loaded.signatures["serving_default"]
    if meta["modality"] == "image":
        out = serve(image_bytes=tf.constant([_read(f) for f in inputs]))
    elif meta["modality"] == "text":
        out = serve(text=tf.constant(list(inputs)))
    else:
        raise ConfigError(
            "tltf predict reads image files or texts; this export takes "
            f"{meta['modality']} tensors. Call its signature from Python."
        )
    return out["probabilities"].numpy(), meta["class_names"]


def _from_keras(model_path, inputs: Sequence[str]):
    import keras
    import tensorflow as tf

    from tltf.cli.options import load_model

    model, names = load_model(model_path)
    spec = model.inputs[0]
    if spec.dtype == "string":
        x = tf.constant(list(inputs))
        x = tf.reshape(x, (-1, 1)) if len(spec.shape) == 2 else x
    else:
        size = tuple(int(d) for d in spec.shape[1:3])
        x = tf.stack([_decode(_read(f), size, int(spec.shape[-1])) for f in inputs])
    probabilities = keras.ops.convert_to_numpy(model(x, training=False))
    names = names or [str(i) for i in range(probabilities.shape[-1])]
    return probabilities, names


def _read(file: str) -> bytes:
    path = Path(file)
    if not path.is_file():
        raise DataError(
            f"Image file {file!r} does not exist. Pass image files to classify "
            "(for a text model, pass texts)."
        )
    return path.read_bytes()


def _decode(data: bytes, size: tuple[int, int], channels: int):
    import tensorflow as tf

    try:
        image = tf.io.decode_image(data, channels=channels, expand_animations=False)
    except tf.errors.InvalidArgumentError as err:
        raise DataError(
            "Could not decode an input as an image (JPEG, PNG, GIF or BMP)."
        ) from err
    return tf.image.resize(image, size)
