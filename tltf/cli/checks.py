"""What each subcommand checks before TensorFlow loads.

Flag values are checked while they are parsed (`tltf.cli.flags`); this
module checks what depends on several flags or on the disk: one data source
and only the flags that go with it, required flags, paths that must exist
and be files or folders, and outputs that already hold a result. Any of these
fails within a second, before any work, with one line that names the flag
and what to do (`ArgumentsError`, exit status 2).

Outputs follow one overwrite policy (`tltf.cli.outputs`).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tltf import runs
from tltf.cli import outputs
from tltf.cli.parsing import ArgumentsError, flag

Options = Mapping[str, Any]

DATA_SOURCES = ("data", "csv", "tfds")
#: Flags that only mean something with one kind of data.
_TEXT_ONLY = ("text_column", "label_column", "sequence_length")
_IMAGE_ONLY = ("image_size", "weights")
#: The smallest side keras.applications bases accept (they refuse less).
KERAS_MIN_IMAGE_SIZE = 32
#: text_csv's default columns (a test holds them equal to the library's).
CSV_COLUMNS = {"text_column": "text", "label_column": "label"}
#: The kind of data each data flag gives (TFDS: known once loaded).
_SOURCE_MODALITY = {"data": "image", "csv": "text"}
#: The flags that give each kind of data.
_MODALITY_FLAGS = {
    "image": "--data <image folder> (or --tfds <image dataset>)",
    "text": "--csv <file> with --text-column and --label-column "
    "(or --tfds <text dataset>)",
}
#: What ``tltf train`` without data (the demo) takes.
_DEMO_OPTIONS = {"output", "overwrite", "epochs"}


# --- each subcommand ---


def train(options: Options) -> None:
    source = data_source(options)
    if source is None:
        extra = sorted(set(options) - _DEMO_OPTIONS)
        if extra:
            raise ArgumentsError(
                f"{flag(extra[0])} needs data: pass --data <image folder>, --csv "
                "<text file> or --tfds <name> (without data, tltf train runs the "
                "offline demo, which takes only --output, --epochs and --overwrite)."
            )
        return demo(options)
    data(options, source)
    if options.get("contrastive_epochs") and source == "data":
        raise ArgumentsError(
            "--contrastive-epochs tunes text encoders; --data is an image folder. "
            "Pass --csv <text file>, or drop --contrastive-epochs."
        )
    model(options)
    outputs.run_output(options, runs.DEFAULT_OUTPUT)


def adapt(options: Options) -> None:
    missing = [flag(k) for k in ("data", "target_data") if k not in options]
    if missing:
        raise ArgumentsError(
            f"tltf adapt needs {' and '.join(missing)}: --data <labelled image "
            "folder> (one subfolder per class) and --target-data <folder of "
            "unlabelled images>."
        )
    folder(options, "data", "one subfolder of images per class")
    folder(options, "target_data", "the unlabelled target images")
    if "target_validation" in options:
        folder(options, "target_validation", "the same class subfolders as --data")
    model(options)
    outputs.run_output(options, runs.ADAPT_OUTPUT)


def tune(options: Options) -> None:
    data(options, require_data(options, "tune"))
    model(options)
    outputs.search_output(options)


def evaluate(options: Options) -> None:
    file = trained_model(options, "evaluate")
    source = require_data(options, "evaluate")
    data(options, source)
    run_modality(file, source)
    oos(options)
    outputs.report_output(options)


def calibrate(options: Options) -> None:
    file = trained_model(options, "calibrate")
    if "target_precision" not in options and "oos" not in options:
        raise ArgumentsError(
            "tltf calibrate needs a rule: pass --target-precision (e.g. 0.95) or "
            "--oos <out-of-scope examples: a text file, one per line, or a folder "
            "of images>."
        )
    if "target_precision" in options and "oos" in options:
        raise ArgumentsError(
            "--target-precision and --oos are two rules for the threshold; pass "
            "one: --target-precision (the precision the answers must reach) or "
            "--oos (out-of-scope examples to reject)."
        )
    if "max_accuracy_drop" in options and "oos" not in options:
        raise ArgumentsError(
            "--max-accuracy-drop goes with --oos (it bounds what rejecting the "
            "out-of-scope examples may cost); pass --oos or leave it out."
        )
    source = require_data(options, "calibrate")
    data(options, source)
    run_modality(file, source)
    oos(options)
    outputs.calibration_output(options, file)


def export(options: Options) -> None:
    trained_model(options, "export")
    if "output" not in options:
        raise ArgumentsError(
            "tltf export needs --output: the folder to create for the SavedModel "
            "(or the .tflite file with --format litert), e.g. --output "
            "serving/my_model."
        )
    outputs.export_output(options)


def predict(options: Options) -> None:
    if "model" not in options:
        raise ArgumentsError(
            f"tltf predict needs --model: a {runs.MODEL_FILE}, its run folder, or "
            "an export folder."
        )
    if not (Path(options["model"]) / "saved_model.pb").is_file():
        existing_model(options["model"], "predict")
    if not options.get("inputs"):
        raise ArgumentsError(
            "Nothing to classify: pass image files, or texts in quotes for a text "
            'model, after the flags, e.g. tltf predict --model m.keras "hello".'
        )
    empty = [i for i, text in enumerate(options["inputs"], 1) if not text.strip()]
    if empty:
        raise ArgumentsError(
            f"Input {empty[0]} of tltf predict is empty: pass image files, or texts "
            "in quotes for a text model, each with something in it."
        )


def list_backbones(options: Options) -> None:
    del options  # --modality's choices are checked by the parser.


def demo(options: Options) -> None:
    outputs.run_output(options, runs.DEMO_OUTPUT)


# --- data ---


def data_source(options: Options) -> str | None:
    """Which data flag was given (``data``, ``csv``, ``tfds``), or None.

    Raises:
        ArgumentsError: More than one was given.
    """
    given = [s for s in DATA_SOURCES if s in options]
    if len(given) > 1:
        flags = " and ".join(flag(s) for s in given)
        raise ArgumentsError(
            f"{flags} both give data; pass one data source: --data <image folder>, "
            "--csv <text file> or --tfds <name>."
        )
    return given[0] if given else None


def require_data(options: Options, command: str) -> str:
    """The data source, or one line saying which flags give one."""
    source = data_source(options)
    if source is None:
        raise ArgumentsError(
            f"tltf {command} needs data: pass --data <image folder>, --csv <text "
            "file> or --tfds <name>."
        )
    return source


def data(options: Options, source: str) -> None:
    """The data flag points at what it should, and only fitting flags are set."""
    if source == "data":
        wrong = [k for k in _TEXT_ONLY if k in options]
        folder(options, "data", "one subfolder of images per class")
    elif source == "csv":
        wrong = [k for k in _IMAGE_ONLY if k in options]
        csv_header(file(options, "csv", "a CSV or TSV file with a header row"), options)
    else:  # TFDS names its own columns.
        wrong = [k for k in CSV_COLUMNS if k in options]
    if wrong:
        kind = {"data": "images", "csv": "text", "tfds": "a TFDS dataset"}[source]
        raise ArgumentsError(
            f"{flag(wrong[0])} does not apply to {flag(source)} ({kind}); leave it "
            f"out, or pass the other kind of data."
        )
    if source != "csv" and "image_size" in options:
        small = min(options["image_size"])
        backbone = str(options.get("backbone", "keras:"))
        if backbone.startswith("keras:") and small < KERAS_MIN_IMAGE_SIZE:
            raise ArgumentsError(
                f"--image-size {small} is too small for {backbone.rstrip(':') or 'the'}"
                f" base: Keras application bases take at least "
                f"{KERAS_MIN_IMAGE_SIZE}x{KERAS_MIN_IMAGE_SIZE} pixels; pass "
                f"--image-size {KERAS_MIN_IMAGE_SIZE} or more."
            )


def csv_header(path: Path, options: Options) -> None:
    """``--csv`` has a header row naming the text and label columns.

    Read as the library reads it (`tltf.data.text_csv`): UTF-8, tabs for
    ``.tsv`` and ``.tab`` files, commas otherwise.
    """
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f, delimiter=delimiter), None)
    except (OSError, UnicodeError, csv.Error) as err:
        raise ArgumentsError(
            f"--csv {str(path)!r} cannot be read as UTF-8 text ({err}). Save it "
            "as UTF-8 (Excel: 'CSV UTF-8')."
        ) from None
    if not header:
        raise ArgumentsError(
            f"--csv {str(path)!r} is empty. Pass a CSV or TSV file with a header "
            "row (a text and a label column), then one row per example."
        )
    for key, default in CSV_COLUMNS.items():
        column = options.get(key, default)
        if column in header:
            continue
        hint = ""
        if delimiter == "," and any("\t" in h for h in header):
            hint = " It looks tab-separated: name it .tsv."
        raise ArgumentsError(
            f"--csv {str(path)!r} has no column {column!r} (its columns: "
            f"{', '.join(map(repr, header))}). Pass {flag(key)} <column>.{hint}"
        )


def run_modality(model_file: Path, source: str) -> None:
    """The data is the kind the run's model takes, when ``run.json`` says."""
    check_modality(
        runs.read_run(model_file.parent).get("modality"),
        source_modality(source),
        flag(source),
    )


def source_modality(source: str) -> str | None:
    """The data kind a data flag gives before loading (None for TFDS)."""
    return _SOURCE_MODALITY.get(source)


def check_modality(model_kind: str | None, data_kind: str | None, given: str) -> None:
    """Raises one clear line when the data is not what the model takes.

    Args:
        model_kind: ``"image"`` or ``"text"``; None when not known yet.
        data_kind: The data's kind; None when not known yet (TFDS).
        given: The data flag given, e.g. ``"--csv"``.

    Raises:
        ArgumentsError: The kinds differ.
    """
    if model_kind is None or data_kind is None or data_kind == model_kind:
        return
    raise ArgumentsError(
        f"This model takes {model_kind}s, but {given} gives {data_kind}s. "
        f"Pass {_MODALITY_FLAGS[model_kind]}."
    )


def oos(options: Options) -> None:
    """``--oos`` exists, and is what the run's model takes when it is known."""
    if "oos" not in options:
        return
    path = Path(options["oos"])
    if not path.exists():
        raise ArgumentsError(
            f"--oos {str(path)!r} does not exist. Pass a text file (one "
            "out-of-scope example per line) or a folder of images."
        )
    modality = runs.read_run(runs.model_file(options["model"]).parent).get("modality")
    if modality == "text" and not path.is_file():
        raise ArgumentsError(
            f"--oos {str(path)!r} is a folder, and this model classifies text: "
            "pass a text file with one out-of-scope example per line."
        )
    if modality == "image" and not path.is_dir():
        raise ArgumentsError(
            f"--oos {str(path)!r} is a file, and this model classifies images: "
            "pass a folder of out-of-scope images."
        )


# --- models ---


def model(options: Options) -> None:
    """``--backbone`` files and ``--weights`` exist."""
    backbone = str(options.get("backbone", ""))
    if backbone.endswith(".keras") and not zipfile.is_zipfile(backbone):
        what = "does not exist"
        if Path(backbone).exists():
            what = "is not a Keras model (a .keras file is a zip archive)"
        raise ArgumentsError(
            f"--backbone {backbone!r} {what}. Pass a .keras file, or a registry "
            "name such as keras:mobilenet_v2 (tltf list-backbones)."
        )
    weights = options.get("weights")
    named = weights is None or str(weights).lower() in ("imagenet", "none")
    if not named and not Path(weights).is_file():
        raise ArgumentsError(
            f"--weights {weights!r} is not a file. Pass imagenet, none (random "
            "weights) or the path of a weights file."
        )


def trained_model(options: Options, command: str) -> Path:
    """The ``.keras`` file ``--model`` names (a file or its run folder)."""
    if "model" not in options:
        raise ArgumentsError(
            f"tltf {command} needs --model: the {runs.MODEL_FILE} that tltf train "
            f"wrote, or its run folder (e.g. --model {runs.DEFAULT_OUTPUT})."
        )
    return existing_model(options["model"], command)


def existing_model(given: Any, command: str) -> Path:
    path = Path(given)
    file = runs.model_file(path)
    if file.is_file() and file.suffix == ".keras":
        if zipfile.is_zipfile(file):
            return file
        inside = "" if file == path else f" ({file.name} in it)"
        raise ArgumentsError(
            f"--model {str(given)!r}{inside} is not a Keras model (a .keras "
            f"file is a zip archive). Pass the {runs.MODEL_FILE} that tltf train "
            f"wrote, or its run folder (tltf {command})."
        )
    if path.is_dir():
        what = (
            "is an export folder; tltf predict reads it, other commands need the "
            f"{runs.MODEL_FILE}"
            if (path / "saved_model.pb").is_file()
            else f"is a folder without a {runs.MODEL_FILE}"
        )
    elif path.exists():
        what = "is not a .keras file"
    else:
        what = "does not exist"
    raise ArgumentsError(
        f"--model {str(given)!r} {what}. Pass the {runs.MODEL_FILE} that tltf "
        f"train wrote, or its run folder (tltf {command})."
    )


# --- paths ---


def folder(options: Options, key: str, holds: str) -> Path:
    """``options[key]`` is an existing folder."""
    return _existing(options, key, f"a folder with {holds}", folder=True)


def file(options: Options, key: str, holds: str) -> Path:
    """``options[key]`` is an existing file."""
    return _existing(options, key, holds, folder=False)


def _existing(options: Options, key: str, wanted: str, *, folder: bool) -> Path:
    path = Path(options[key])
    if path.is_dir() if folder else path.is_file():
        return path
    if not path.exists():
        what = "does not exist"
    else:
        what = "is a file, not a folder" if folder else "is a folder, not a file"
    raise ArgumentsError(f"{flag(key)} {str(path)!r} {what}. Pass {wanted}.")
