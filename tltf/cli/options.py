"""Options of the ``tltf`` command line: config files, data, models.

Options are a dict of the settings the user gave (flags or config file);
settings left out are absent, so every library call gets only what the user
said and the library's defaults do the rest. Imported before TensorFlow
starts (`tltf.cli.main`): TensorFlow and the library load inside the
functions that need them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tltf import runs
from tltf.cli.parsing import size_pair
from tltf.errors import ConfigError, DataError

_NOT_SETTINGS = {"command", "debug", "config"}
_DATA_SOURCES = ("data", "csv", "tfds")


def merge_config(args: argparse.Namespace) -> dict[str, Any]:
    """Merges the config file (if any) under the flags and drops unset values.

    Args:
        args: Parsed flags; unset flags are None.

    Returns:
        ``{setting: value}`` for every setting the user gave.

    Raises:
        ConfigError: The config file is missing, unreadable, not a mapping,
            or has keys that are not flags of the command.
    """
    flags = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    options: dict[str, Any] = {}
    if args.config:
        options.update(_read_config(Path(args.config), set(flags), args.command))
    options.update({k: v for k, v in flags.items() if v is not None})
    if "image_size" in options:
        options["image_size"] = size_pair(options["image_size"])
    return {k: v for k, v in options.items() if v is not None}


def _read_config(path: Path, known: set[str], command: str) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(
            f"Config file {str(path)!r} does not exist. Pass a YAML or JSON file "
            "whose keys are flag names, e.g. `epochs: 3`."
        )
    text = path.read_text()
    try:
        if path.suffix.lower() == ".json":
            content = json.loads(text)
        else:
            import yaml

            content = yaml.safe_load(text)
    except Exception as err:  # noqa: BLE001 - YAML and JSON raise their own.
        raise ConfigError(
            f"Config file {str(path)!r} is not valid YAML/JSON: "
            f"{str(err).splitlines()[0]}"
        ) from err
    if content is None:
        return {}
    if not isinstance(content, Mapping):
        raise ConfigError(
            f"Config file {str(path)!r} must hold a mapping of flag names to "
            f"values. Received: {type(content).__name__}"
        )
    settings = {str(k).replace("-", "_"): v for k, v in content.items()}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ConfigError(
            f"Config file {str(path)!r} has keys that are not flags of `tltf "
            f"{command}`: {unknown}. Known keys: {sorted(known)}."
        )
    return settings


def pick(options: Mapping[str, Any], *names: str, **renamed: str) -> dict[str, Any]:
    """The given options that are set, optionally under other keyword names."""
    out = {n: options[n] for n in names if n in options}
    out.update({new: options[old] for new, old in renamed.items() if old in options})
    return out


# --- data ---


def data_source(options: Mapping[str, Any]) -> str | None:
    """Which data flag was given (``data``, ``csv``, ``tfds``), or None."""
    given = [s for s in _DATA_SOURCES if s in options]
    if len(given) > 1:
        flags = ", ".join(f"--{s}" for s in given)
        raise ConfigError(f"Give one data source, not several. Received: {flags}")
    return given[0] if given else None


def load_data(options: Mapping[str, Any], source: str) -> tuple[Any, str]:
    """Loads the data the options point at.

    Returns:
        ``(LoadedData, modality)`` with modality ``"image"`` or ``"text"``.
    """
    import tltf

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


# --- models ---


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
    import tltf

    kwargs = {**chosen, **pick(options, "learning_rate")}
    backbone = options.get("backbone", default_backbone(modality))
    if modality == "text":
        kwargs.update(pick(options, "sequence_length"))
        return tltf.build_text_classifier(backbone, num_classes, **kwargs)
    if "weights" in options:
        weights = options["weights"]
        kwargs["weights"] = None if str(weights).lower() == "none" else weights
    if "image_size" in options:
        kwargs["input_shape"] = (*options["image_size"], 3)
    return tltf.build_image_classifier(backbone, num_classes, **kwargs)


def default_backbone(modality: str) -> str:
    """The library's default base for ``"image"`` or ``"text"`` data."""
    from tltf.builders import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE

    return DEFAULT_TEXT_BACKBONE if modality == "text" else DEFAULT_IMAGE_BACKBONE


def load_model(path: str | os.PathLike | None) -> tuple[Any, list[str] | None]:
    """Loads a ``.keras`` model and the class names saved next to it."""
    if path is None:
        raise ConfigError(
            f"Pass --model: the {runs.MODEL_FILE} that `tltf train` wrote "
            f"(e.g. {runs.model_path(runs.DEFAULT_OUTPUT)})."
        )
    file = runs.model_file(path)
    if not file.is_file() or file.suffix != ".keras":
        raise ConfigError(
            f"Model file {str(path)!r} does not exist or is not a .keras file. "
            f"Pass the {runs.MODEL_FILE} that `tltf train` wrote."
        )
    import keras

    import tltf

    tltf.Head  # noqa: B018 - the first use of tltf registers its layers.
    _register_text_layers()
    model = keras.saving.load_model(file)
    return model, runs.read_run(file.parent).get("class_names")


def _register_text_layers() -> None:
    """Imports KerasHub so that saved text models deserialize."""
    with contextlib.suppress(ImportError):
        import keras_hub  # noqa: F401


def require_data(options: Mapping[str, Any], command: str) -> str:
    """The data source, or a clear error when none was given."""
    source = data_source(options)
    if source is None:
        raise DataError(
            f"`tltf {command}` needs data: pass --data <image folder>, "
            "--csv <text file> or --tfds <name>."
        )
    return source
