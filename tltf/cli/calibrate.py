"""``tltf calibrate``: out-of-scope rejection for a trained model.

Fits the temperature and rejection threshold of `tltf.calibrate_rejection`
on the run's held-out validation split, or all of a separate file (the split
is picked as ``tltf evaluate`` picks it; ``--split`` overrides), saves
the calibrated model over the ``.keras`` file (written atomically; the
weights do not change) and writes ``calibration.json`` next to it. Every
later ``tltf evaluate``, ``export`` and ``predict`` of that model answers
``unknown`` below the threshold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tltf import files, runs
from tltf.cli import evaluation as held_out
from tltf.cli.options import load_data, load_model, require_data
from tltf.errors import ConfigError, DataError

CALIBRATION_FILE = "calibration.json"


def calibrate(options: dict[str, Any]) -> int:
    """Runs ``tltf calibrate`` with the merged ``options``."""
    import tltf

    model, _ = load_model(options.get("model"))
    file = runs.model_file(options["model"])
    validation, what = _validation_data(model, options, file.parent)
    print(f"Calibrating on {what}.")
    kwargs = {}
    if "target_precision" in options:
        kwargs["target_precision"] = options["target_precision"]
    if "oos" in options:
        kwargs["oos_data"] = read_oos(options["oos"], model)
    if "max_accuracy_drop" in options:
        kwargs["max_accuracy_drop"] = options["max_accuracy_drop"]
    result = tltf.calibrate_rejection(model, validation, **kwargs)
    with files.atomic_path(file) as temp:
        model.save(temp)
    record = files.write_json(file.parent / CALIBRATION_FILE, result.to_dict())
    print(summary(result))
    print(f"Calibrated model: {file}")
    print(f"Calibration: {record}")
    return 0


def summary(result: Any) -> str:
    """A few lines on what `tltf.calibrate_rejection` chose."""
    lines = [
        f"temperature {result.temperature:.3f}: ECE {result.ece_before:.3f} "
        f"-> {result.ece_after:.3f}",
        f"threshold {result.threshold:.3f} ({result.rule}): answers "
        f"{result.coverage:.1%} of the validation examples, "
        f"{result.precision:.1%} of them right; accuracy "
        f"{result.accuracy:.3f} -> {result.accuracy_with_rejection:.3f}",
    ]
    if result.out_of_scope_recall is not None:
        lines.append(
            f"out-of-scope: {result.out_of_scope_recall:.1%} answered 'unknown'"
        )
    return "\n".join(lines)


def read_oos(path: str, model: Any) -> Any:
    """Out-of-scope inputs: a text file (one per line) or a folder of images.

    Raises:
        DataError: The path is missing, or holds the other kind of input.
    """
    import tltf

    source = Path(path)
    takes_text = str(model.inputs[0].dtype) == "string"
    if takes_text:
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
    height, width = (int(d) for d in model.inputs[0].shape[1:3])
    return tltf.data.unlabelled_images(source, image_size=(height, width))


def _validation_data(model: Any, options: dict[str, Any], folder: Path):
    """The run's held-out split of the given data, as ``tltf evaluate`` picks it."""
    if "target_precision" not in options and "oos" not in options:
        raise ConfigError(
            "Pass --target-precision (e.g. 0.95) or --oos <out-of-scope "
            "examples: a text file, one per line, or a folder of images>."
        )
    source = require_data(options, "calibrate")
    run = runs.read_run(folder)
    kind = held_out.model_modality(model, run)
    held_out.check_modality(kind, held_out.source_modality(source), f"--{source}")
    plan = held_out.plan(options, source, run)
    data_options = dict(plan.data_options)
    shape = model.inputs[0].shape
    if source != "csv" and "image_size" not in data_options and len(shape) == 4:
        data_options["image_size"] = (int(shape[1]), int(shape[2]))
    data, data_kind = load_data(data_options, source)
    held_out.check_modality(kind, data_kind, f"--{source}")
    dataset, count, what = held_out.pick_split(data, plan.split)
    return dataset, f"{what} ({count} examples)"
