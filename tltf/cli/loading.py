"""Data, models and out-of-scope examples from the options, for the handlers.

Every handler turns options into library objects here, so a flag means the
same in every subcommand. Imports the whole library (and TensorFlow): its
first ``from tltf import ...`` loads the public API, which registers every
tltf layer and optimizer before a model is loaded (the ``tltf`` command's
process imports the library lazily, see `tltf`). The handlers import this
module once the arguments are checked.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

import tltf
from tltf import build_image_classifier, build_text_classifier, runs
from tltf.builders import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE
from tltf.errors import DataError


def pick(options: Mapping[str, Any], *names: str, **renamed: str) -> dict[str, Any]:
    """The given options that are set, optionally under other keyword names."""
    out = {n: options[n] for n in names if n in options}
    out.update({new: options[old] for new, old in renamed.items() if old in options})
    return out


# --- data ---


def load_data(options: Mapping[str, Any], source: str) -> tuple[Any, str]:
    """Loads the data the options point at.

    Returns:
        ``(LoadedData, modality)`` with modality ``"image"`` or ``"text"``.
    """
    split = pick(options, "validation_split", "seed")
    if source == "data":
        kwargs = pick(options, "image_size", "batch_size")
        return tltf.data.image_folder(options["data"], **kwargs, **split), "image"
    if source == "csv":
        kwargs = pick(options, "text_column", "label_column", "batch_size")
        return tltf.data.text_csv(options["csv"], **kwargs, **split), "text"
    kwargs = pick(options, "image_size", "batch_size")
    data = tltf.data.tfds_dataset(options["tfds"], **kwargs)
    spec = data.train.element_spec[0]
    return data, ("text" if spec.dtype.name == "string" else "image")


def image_size_of(model: Any) -> dict[str, tuple[int, int]]:
    """``{"image_size": (h, w)}`` of an image model's input; ``{}`` for text."""
    shape = model.inputs[0].shape
    if len(shape) == 4 and None not in shape[1:3]:
        return {"image_size": (int(shape[1]), int(shape[2]))}
    return {}


def read_oos(path: str, model: Any) -> Any:
    """Out-of-scope inputs: a text file (one per line) or a folder of images.

    Raises:
        DataError: The path holds the other kind of input, or nothing.
    """
    source = Path(path)
    if str(model.inputs[0].dtype) == "string":
        if not source.is_file():
            raise DataError(
                f"--oos {path!r} is not a file. For a text model pass a text "
                "file with one out-of-scope example per line."
            )
        texts = [t.strip() for t in source.read_text().splitlines() if t.strip()]
        if not texts:
            raise DataError(f"--oos {path!r} holds no text (one example per line).")
        return texts
    if not source.is_dir():
        raise DataError(
            f"--oos {path!r} is not a folder. For an image model pass a folder "
            "of out-of-scope images."
        )
    return tltf.data.unlabelled_images(source, **image_size_of(model))


# --- models ---


def default_backbone(modality: str) -> str:
    """The library's default base for ``"image"`` or ``"text"`` data."""
    return DEFAULT_TEXT_BACKBONE if modality == "text" else DEFAULT_IMAGE_BACKBONE


def build_model(
    options: Mapping[str, Any], num_classes: int, modality: str, **chosen: Any
) -> Any:
    """Builds the classifier the options describe, for ``modality`` data.

    Args:
        options: The user's settings.
        num_classes: Classes of the data.
        modality: ``"image"`` or ``"text"``.
        **chosen: Builder arguments a command sets itself (``tltf adapt``'s
            ``hidden_units``).
    """
    kwargs = {**chosen, **pick(options, "learning_rate")}
    backbone = options.get("backbone", default_backbone(modality))
    if modality == "text":
        kwargs.update(pick(options, "sequence_length"))
        return build_text_classifier(backbone, num_classes, **kwargs)
    kwargs.update(image_base(options))
    return build_image_classifier(backbone, num_classes, **kwargs)


def image_base(options: Mapping[str, Any]) -> dict[str, Any]:
    """``weights`` and ``input_shape`` for an image builder, as given."""
    kwargs: dict[str, Any] = {}
    if "weights" in options:
        weights = options["weights"]
        kwargs["weights"] = None if str(weights).lower() == "none" else weights
    if "image_size" in options:
        kwargs["input_shape"] = (*options["image_size"], 3)
    return kwargs


def load_model(path: str | os.PathLike) -> tuple[Any, list[str] | None]:
    """Loads a ``.keras`` model (or a run folder's) and its class names.

    The path was checked before TensorFlow loaded (`tltf.cli.checks`).
    """
    file = runs.model_file(path)
    with contextlib.suppress(ImportError):
        import keras_hub  # noqa: F401 - registers KerasHub's layers for text models
    model = keras.saving.load_model(file)
    return model, runs.read_run(file.parent).get("class_names")


def model_modality(model: Any, run: Mapping[str, Any]) -> str:
    """``"text"`` for models that take strings, else ``"image"``."""
    if run.get("modality") in ("image", "text"):
        return run["modality"]
    return "text" if model.inputs[0].dtype == "string" else "image"
