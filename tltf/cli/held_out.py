"""What ``tltf evaluate`` and ``tltf calibrate`` score, and where reports go.

- The split: by default the held-out validation split of the training run
  (same ``validation_split`` and ``seed`` as ``run.json`` records, else the
  loader's defaults), so training examples are not scored. Data other than
  the run's is a separate test set and is scored whole. ``--split`` says
  otherwise: ``validation``, ``train`` or ``all``.
- The data kind: an image model on a CSV (or a text model on an image
  folder) is one clear error (`tltf.cli.checks.check_modality`).
- The folder: a report is never replaced silently. Without ``--output`` a
  new folder next to the model is used when the run's ``evaluation/`` holds a
  report; with ``--output`` an existing report needs ``--overwrite``
  (checked before TensorFlow loads, `tltf.cli.checks`).

Imported by the handlers (it reads the loaders' defaults from the library).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tltf
from tltf import runs
from tltf.cli.checks import check_modality, data_source, source_modality
from tltf.cli.loading import image_size_of, load_data, model_modality
from tltf.cli.parsing import ArgumentsError, flag
from tltf.errors import ConfigError, DataError

SPLITS = ("validation", "train", "all")
_SOURCES = ("data", "csv", "tfds")


@dataclasses.dataclass
class Plan:
    """The split to score and the options to load the data with.

    Attributes:
        split: ``"validation"``, ``"train"`` or ``"all"``.
        data_options: Options for `tltf.cli.loading.load_data`.
        why: How the split was chosen, for the user.
    """

    split: str
    data_options: dict[str, Any]
    why: str


# --- settings of the training run ---


def split_settings(source: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The ``validation_split`` and ``seed`` the loader of ``source`` uses.

    Args:
        source: ``"data"``, ``"csv"`` or ``"tfds"``.
        options: The user's options; settings they give win over defaults.

    Returns:
        ``{"validation_split": ..., "seed": ...}`` for image folders and
        CSV files (recorded in ``run.json``), ``{}`` for TFDS, whose splits
        are fixed.
    """
    loader = {"data": tltf.data.image_folder, "csv": tltf.data.text_csv}
    if source not in loader:
        return {}
    params = inspect.signature(loader[source]).parameters
    settings = {k: params[k].default for k in ("validation_split", "seed")}
    settings.update({k: options[k] for k in settings if k in options})
    return settings


def plan(options: Mapping[str, Any], source: str, run: Mapping[str, Any]) -> Plan:
    """Chooses the split and the data options of ``tltf evaluate``.

    Args:
        options: The user's options (``split`` among them, maybe).
        source: The data flag given: ``"data"``, ``"csv"`` or ``"tfds"``.
        run: The training run's ``run.json`` (``{}`` when there is none).

    Returns:
        The `Plan`.

    Raises:
        ConfigError: An unknown ``--split``.
    """
    split = options.get("split")
    if split is not None and split not in SPLITS:
        raise ConfigError(f"--split must be one of {SPLITS}. Received: {split!r}")
    settings = split_settings(source, {})
    # What the user gave to `tltf train`, then what it recorded as used.
    for record in (run.get("options") or {}, run.get("data") or {}):
        settings.update({k: record[k] for k in settings if k in record})
    data_options = {**settings, **options}
    same = _same_data(options, source, run)
    if run and same is not False and split != "all":
        _same_split(settings, options)
    if split is not None:
        return Plan(split, data_options, "--split")
    if same is False:
        return Plan("all", data_options, "not the data the model was trained on")
    return Plan("validation", data_options, _held_out_why(settings, data_options, run))


def _same_split(recorded: Mapping[str, Any], options: Mapping[str, Any]) -> None:
    """The run's data split again with other settings would mix its two halves.

    Raises:
        ArgumentsError: ``--validation-split`` or ``--seed`` differs from what
            the training run used.
    """
    for key, used in recorded.items():
        if key in options and options[key] != used:
            raise ArgumentsError(
                f"{flag(key)} {options[key]} is not the training run's ({used}): "
                "its validation split would hold training examples. Leave "
                f"{flag(key)} out (the run's split is used), or pass --split all."
            )


def _held_out_why(
    settings: Mapping[str, Any], data_options: Mapping[str, Any], run: Mapping
) -> str:
    used = ", ".join(f"{k}={data_options[k]}" for k in settings)
    if not used:
        why = "the dataset's validation split"
    elif run:
        why = f"held out by the training run with {used}"
    else:
        why = f"held out with the loader's defaults {used}"
    return why + "; --split all for every example"


def _same_data(
    options: Mapping[str, Any], source: str, run: Mapping[str, Any]
) -> bool | None:
    """Whether ``options`` point at the run's training data (None: unknown)."""
    recorded = run.get("data") or {}
    if "path" in recorded:  # Absolute, so the folder `tltf train` ran in is moot.
        given = options[source] if source == "tfds" else Path(options[source]).resolve()
        return recorded.get("source") == source and str(given) == recorded["path"]
    trained = run.get("options") or {}
    if not any(k in trained for k in _SOURCES):
        return None
    if source not in trained:
        return False
    if source == "tfds":
        return trained[source] == options[source]
    return Path(trained[source]).resolve() == Path(options[source]).resolve()


def data_record(source: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """What ``run.json`` keeps about the training data, for `tltf evaluate`.

    Returns:
        ``{"source", "path", "validation_split", "seed"}``: the data flag,
        the absolute path (or TFDS name) and the split settings used.
    """
    value = options[source]
    path = value if source == "tfds" else str(Path(value).resolve())
    return {"source": source, "path": path, **split_settings(source, options)}


# --- the data kind ---


# --- the split and the report folder ---


@dataclasses.dataclass
class Scored:
    """The examples ``tltf evaluate`` or ``tltf calibrate`` scores.

    Attributes:
        dataset: The batched examples.
        count: How many there are.
        what: ``"the validation split"``, ``"every example"``, ...
        why: How the split was chosen.
        class_names: The data's class names.
    """

    dataset: Any
    count: int
    what: str
    why: str
    class_names: list[str]


def load_scored(model: Any, options: Mapping[str, Any], folder: Path) -> Scored:
    """Loads what ``--split`` (or the default) picks of the given data.

    Args:
        model: The loaded model (its input size and kind).
        options: The checked options.
        folder: The model's run folder (its ``run.json``, maybe none).

    Raises:
        ConfigError: The data is not the kind the model takes, or the split
            asked for is empty.
    """
    source = data_source(options)
    run = runs.read_run(folder)
    kind = model_modality(model, run)
    check_modality(kind, source_modality(source), f"--{source}")
    chosen = plan(options, source, run)
    data_options = dict(chosen.data_options)
    if source != "csv":
        _model_image_size(model, data_options)
    data, data_kind = load_data(data_options, source)
    check_modality(kind, data_kind, f"--{source}")
    same_classes(run.get("class_names"), list(data.class_names), f"--{source}")
    dataset, count, what = pick_split(data, chosen.split)
    return Scored(dataset, count, what, chosen.why, list(data.class_names))


def _model_image_size(model: Any, data_options: dict[str, Any]) -> None:
    """Images are read at the model's size; another ``--image-size`` fails."""
    size = image_size_of(model).get("image_size")
    given = data_options.get("image_size")
    if size is not None and given is not None and tuple(given) != size:
        raise ConfigError(
            f"--image-size {given[0]}x{given[1]}: this model takes "
            f"{size[0]}x{size[1]} images. Leave --image-size out (tltf reads "
            "the images at the model's size)."
        )
    if size is not None:
        data_options["image_size"] = size


def same_classes(model: list[str] | None, data: list[str], given: str) -> None:
    """The data's classes are the model's, in the same order.

    Labels are numbered by the data's own class names; scored against a model
    with other classes (or some of them missing), they would be matched by
    position and the report would be silently wrong.

    Raises:
        DataError: The class names differ (nothing to check when the run
            does not record them).
    """
    if model is None or list(model) == data:
        return
    unknown = [c for c in data if c not in model]
    missing = [c for c in model if c not in data]
    what = (
        f"classes the model does not know: {unknown}"
        if unknown
        else f"not every class of the model (missing: {missing})"
    )
    raise DataError(
        f"{given} has {what}; the model's classes are {list(model)}. Pass data "
        "labelled with the model's class names, every class present."
    )


def pick_split(data: Any, split: str) -> tuple[Any, int, str]:
    """``(dataset, examples, description)`` of ``split`` of a `LoadedData`.

    Raises:
        ConfigError: ``validation`` when the data has no validation split.
    """
    if split == "validation":
        if data.validation is None or not data.num_validation:
            raise ConfigError(
                "There is no held-out validation split (the training run used "
                "validation_split=0). Pass --split all to score every example, "
                "training ones included, or evaluate a separate test set."
            )
        return data.validation, data.num_validation, "the validation split"
    if split == "train":
        return data.train, data.num_train, "the training split"
    total = data.num_train + data.num_validation
    if data.validation is None:
        return data.train, total, "every example"
    return data.train.concatenate(data.validation), total, "every example"


def report_folder(
    output: str | None, model_folder: Path, overwrite: bool
) -> tuple[Path, str | None]:
    """The folder for the report, and a note when it is not the default one.

    Args:
        output: The ``--output`` folder, or None.
        model_folder: The folder of the model (the training run).
        overwrite: ``--overwrite`` was given.

    Returns:
        ``(folder, note)``. Without ``--output``, a run whose
        ``evaluation/`` already holds a report gets ``evaluation-2/`` (or the
        next free number, `tltf.runs.next_evaluation_dir`) and a note saying
        so; with ``--overwrite`` the run's ``evaluation/`` is reused.
    """
    if output is not None:
        return Path(output), None
    default = runs.evaluation_dir(model_folder)
    if overwrite:
        return default, None
    folder = runs.next_evaluation_dir(model_folder)
    if folder == default:
        return default, None
    note = (
        f"{default / runs.REPORT_FILE} exists (kept); writing to {folder} instead "
        "(--output picks the folder, --overwrite replaces the report)."
    )
    return folder, note
