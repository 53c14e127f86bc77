"""The run folder: what a training run leaves behind, and where.

`tltf train`, `tltf adapt` and `tltf.demo.run_demo` write the same layout::

    <run>/
      model.keras      the fine-tuned model: architecture and weights, without
                       the optimizer's state (serving-sized: a text model's
                       Adam moments would triple it); it loads ready to
                       predict, evaluate, calibrate and export, and is
                       compiled again before further training
      run.json         the run record: class names, modality, the options
                       used, the training history (and, from `tltf train`,
                       the training data, so `tltf evaluate` can find the
                       held-out split again)
      evaluation/      report.json and plots of the validation split
      evaluation-2/    a later report on the same run (`tltf evaluate` never
                       replaces one without being told); then -3, -4, ...
      export/          the verified SavedModel
      adapter.safetensors   LoRA adapters and head (runs with --lora-rank)
      calibration.json the temperature and threshold of `tltf calibrate`
      reliability.png  its reliability diagram: accuracy against confidence,
                       before and after temperature scaling

`tltf tune` keeps its search in a folder of its own, with ``trials.png``
(each trial's score against its learning rates) beside KerasTuner's files.

A run is written whole into a temporary folder beside its own and swapped in
when complete (`writing_run`): the folder holds one run or the previous one,
never a mix, whatever interrupts the writing.

Every name and path of that layout comes from here, so the library and the
command line cannot drift apart. This module imports no TensorFlow.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from tltf.files import atomic_path, write_json

#: Where `tltf train` puts a run when no ``--output`` is given.
DEFAULT_OUTPUT = "runs/tltf"
#: Where the offline demo puts its run.
DEMO_OUTPUT = "runs/tltf-demo"
#: Where `tltf adapt` puts a run when no ``--output`` is given.
ADAPT_OUTPUT = f"{DEFAULT_OUTPUT}-adapt"
#: Where `tltf tune` keeps its search when no ``--output`` is given.
TUNE_OUTPUT = f"{DEFAULT_OUTPUT}-tune"

MODEL_FILE = "model.keras"
RUN_FILE = "run.json"
EVALUATION_DIR = "evaluation"
EXPORT_DIR = "export"
#: The report `tltf.evaluate` writes in its output folder.
REPORT_FILE = "report.json"
ADAPTER_FILE = "adapter.safetensors"
#: What `tltf calibrate` chose, beside the model it calibrated.
CALIBRATION_FILE = "calibration.json"
#: Its reliability diagram (`tltf.evaluation.plots.reliability_diagram`).
RELIABILITY_FILE = "reliability.png"
#: The trials of a `tltf tune` search (`tltf.evaluation.plots.tuning_trials`).
TRIALS_FILE = "trials.png"

PathLike = str | os.PathLike


# --- the parts of a run ---


def model_path(folder: PathLike) -> Path:
    """The ``model.keras`` of the run in ``folder``."""
    return Path(folder) / MODEL_FILE


def record_path(folder: PathLike) -> Path:
    """The ``run.json`` of the run in ``folder``."""
    return Path(folder) / RUN_FILE


def evaluation_dir(folder: PathLike) -> Path:
    """The ``evaluation/`` folder the run's own report goes to."""
    return Path(folder) / EVALUATION_DIR


def export_dir(folder: PathLike) -> Path:
    """The ``export/`` folder of the run's SavedModel."""
    return Path(folder) / EXPORT_DIR


def model_file(path: PathLike) -> Path:
    """``path``, or the ``model.keras`` inside it when ``path`` is a run folder."""
    file = Path(path)
    if file.is_dir() and model_path(file).is_file():
        return model_path(file)
    return file


def is_run(folder: PathLike) -> bool:
    """Whether ``folder`` holds a run (its model or its run record)."""
    return model_path(folder).is_file() or record_path(folder).is_file()


def next_evaluation_dir(folder: PathLike) -> Path:
    """The first report folder of the run that holds no report yet.

    ``evaluation/`` when it has no ``report.json``, else ``evaluation-2/``,
    ``evaluation-3/``, ...: a report is never replaced by picking its folder.

    Args:
        folder: The run folder.

    Returns:
        The folder (it may not exist yet).
    """
    default = evaluation_dir(folder)
    if not (default / REPORT_FILE).exists():
        return default
    n = 2
    while (Path(folder) / f"{EVALUATION_DIR}-{n}" / REPORT_FILE).exists():
        n += 1
    return Path(folder) / f"{EVALUATION_DIR}-{n}"


# --- the run record ---


def run_record(
    class_names: Sequence[str],
    modality: str,
    options: Mapping[str, Any],
    history: Any,
) -> dict[str, Any]:
    """The content of ``run.json``.

    Args:
        class_names: Class names in label order.
        modality: ``"image"`` or ``"text"``.
        options: The settings the run was made with (flag names as keys).
        history: The ``History`` of training, or its ``.history`` dict.

    Returns:
        ``{"class_names", "modality", "options", "history"}``; callers may
        add keys (`tltf train` adds ``"data"``).
    """
    return {
        "class_names": list(class_names),
        "modality": modality,
        "options": dict(options),
        "history": getattr(history, "history", history),
    }


def read_run(folder: PathLike) -> dict[str, Any]:
    """The ``run.json`` in ``folder``, or ``{}`` when there is none."""
    file = record_path(folder)
    return json.loads(file.read_text()) if file.is_file() else {}


def write_run(folder: PathLike, record: Mapping[str, Any]) -> Path:
    """Writes ``run.json`` in ``folder`` (created) atomically.

    Values JSON does not know (paths, NumPy numbers) are written as text.

    Returns:
        The path of ``run.json``.
    """
    return write_json(record_path(folder), dict(record), default=str)


@contextlib.contextmanager
def writing_run(folder: PathLike) -> Iterator[Path]:
    """Yields an empty folder to write a whole run in; it becomes ``folder``.

    The run is written into a temporary folder beside ``folder``, which
    replaces ``folder`` (and any run in it) only once the block ends
    without an error. An error or an interrupt (Ctrl-C) leaves ``folder`` as
    it was and removes the temporary one. Paths written inside the block
    name the temporary folder: `final_path` turns them into their place
    after the swap.

    Example:
        >>> with writing_run("runs/flowers") as temp:
        ...     save_run(model, temp, record)
    """
    with atomic_path(folder, directory=True) as temp:
        temp.mkdir()
        yield temp


def final_path(path: PathLike, temp: PathLike, folder: PathLike) -> Path:
    """Where ``path``, written inside `writing_run`'s ``temp``, ends up."""
    return Path(folder) / Path(path).relative_to(temp)


def save_run(model: Any, folder: PathLike, record: Mapping[str, Any]) -> Path:
    """Saves ``model`` as ``model.keras`` and ``record`` as ``run.json``.

    ``model.keras`` holds the architecture and the weights, without the
    optimizer's state and compile settings (`tltf._compat.saving_for_inference`):
    it loads without warnings, ready to predict, evaluate, calibrate and
    export, at the size of the weights (a fine-tuned text model's Adam
    moments would triple it). A model with LoRA adapters also gets
    ``adapter.safetensors`` (the adapters and the head: `tltf.load_adapter`
    puts them on a fresh model). Write a run through `writing_run` to
    replace an older one in the same folder.

    Args:
        model: The trained ``keras.Model``.
        folder: The run folder (created).
        record: The run record, e.g. from `run_record`.

    Returns:
        The path of ``model.keras``.
    """
    from tltf.backbones.layers import adapted_layers  # imports TF: here, not on top
    from tltf.training.lora import save_adapter

    save_model(model, model_path(folder))
    if adapted_layers(model):
        save_adapter(model, Path(folder) / ADAPTER_FILE)
    else:
        (Path(folder) / ADAPTER_FILE).unlink(missing_ok=True)  # an older run's
    write_run(folder, record)
    return model_path(folder)


def save_model(model: Any, path: PathLike) -> Path:
    """Saves ``model`` to the ``.keras`` file ``path``, atomically, without
    the optimizer's state (see `save_run`).

    Returns:
        ``path``.
    """
    from tltf import _compat  # imports TF: here, not on top

    with atomic_path(path) as temp, _compat.saving_for_inference(model):
        model.save(temp)
    return Path(path)
