"""The ``tltf`` subcommands, on options already merged and cleaned.

Each handler takes the dict of settings the user gave (see
`tltf.cli.options.merge_config`), calls the public library, prints where its
results went, and returns the exit status. A run's folder layout (model,
``run.json``, ``evaluation/``, ``export/``) is `tltf.runs`'s. This module
imports TensorFlow; `tltf.cli.startup.import_commands` imports it quietly.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tltf import runs
from tltf.cli import evaluation as held_out
from tltf.cli.calibrate import calibrate, read_oos
from tltf.cli.options import (
    build_model,
    data_source,
    default_backbone,
    load_data,
    load_model,
    pick,
    require_data,
)
from tltf.cli.parsing import parse_schedule
from tltf.errors import ConfigError, DataError, ExportError
from tltf.training.recipes import fine_tune

#: Epochs after the frozen stage when neither flag nor config says
#: (`tltf.fine_tune` has no default: it needs to be told).
DEFAULT_EPOCHS = 3
#: The head `tltf adapt` builds. Adaptation changes what the output layer
#: reads, so something before it must train: a hidden layer (DANN's
#: bottleneck) on the frozen pretrained base, fast and hard to break.
ADAPT_HIDDEN_UNITS = (256,)


def run(command: str, options: dict[str, Any]) -> int:
    """Runs subcommand ``command`` with ``options``; returns the exit status."""
    handlers: dict[str, Callable[[dict[str, Any]], int]] = {
        "train": train,
        "adapt": adapt,
        "tune": tune,
        "evaluate": evaluate,
        "calibrate": calibrate,
        "export": export,
        "predict": predict,
        "list-backbones": list_backbones,
        "demo": demo,
    }
    return handlers[command](options)


def train(options: dict[str, Any]) -> int:
    """``tltf train``: load, build, fine-tune, save, evaluate, maybe export."""
    source = data_source(options)
    if source is None:
        print("No data given (--data, --csv or --tfds): running the offline demo.")
        return demo(options)
    out = Path(options.get("output", runs.DEFAULT_OUTPUT))
    _check_export_free(options, out)
    data, modality = load_data(options, source)
    print(
        f"Data: {data.num_train} training, {data.num_validation} validation "
        f"examples, classes {data.class_names}"
    )
    model = build_model(options, data.num_classes, modality)
    print(_backbone_line(model, options.get("backbone") or default_backbone(modality)))
    kwargs = pick(options, "epochs", "lora_rank")
    if "schedule" in options:
        kwargs["schedule"] = parse_schedule(options["schedule"])
    kwargs.setdefault("epochs", DEFAULT_EPOCHS)
    history = fine_tune(model, data.train, data.validation, **kwargs)
    _save_run(model, _run_record(options, source, data, modality, history), out)
    _report_and_export(model, data, data.class_names, history, out, options)
    return 0


def adapt(options: dict[str, Any]) -> int:
    """``tltf adapt``: train on labelled source images, adapt to unlabelled ones.

    Saves the run like ``train`` (model, ``run.json``, ``evaluation/``, maybe
    ``export/``); the report scores the labelled target validation images
    when given, else the source's held-out split.
    """
    import tltf

    _require_adapt_data(options)
    out = Path(options.get("output", runs.ADAPT_OUTPUT))
    _check_export_free(options, out)
    data, _ = load_data(options, "data")
    images = pick(options, "image_size", "batch_size")
    target = tltf.data.unlabelled_images(options["target_data"], **images)
    scored = _target_validation(options, data.class_names, images)
    print(
        f"Source: {data.num_train} training, {data.num_validation} validation "
        f"images, classes {data.class_names}"
    )
    print(f"Target: {_count(target)} unlabelled images in {options['target_data']}")
    model = build_model(
        options, data.num_classes, "image", hidden_units=ADAPT_HIDDEN_UNITS
    )
    print(_backbone_line(model, options.get("backbone") or default_backbone("image")))
    kwargs = pick(options, "method", "epochs", weight="adaptation_weight")
    tltf.adapt_domain(model, data.train, target, validation_data=scored, **kwargs)
    history = model.history
    record = _run_record(options, "data", data, "image", history)
    record["target"] = {
        key: str(Path(options[key]).resolve())
        for key in ("target_data", "target_validation")
        if key in options
    }
    _save_run(model, record, out)
    if scored is None:
        print("No --target-validation: the report scores the source's held-out split.")
    scored = scored if scored is not None else data
    _report_and_export(model, scored, data.class_names, history, out, options)
    return 0


def _require_adapt_data(options: dict[str, Any]) -> None:
    missing = [
        f"--{k.replace('_', '-')}" for k in ("data", "target_data") if k not in options
    ]
    if missing:
        raise DataError(
            f"`tltf adapt` needs {' and '.join(missing)}: --data <labelled image "
            "folder> (one subfolder per class) and --target-data <folder of "
            "unlabelled images>."
        )


def _target_validation(
    options: dict[str, Any], class_names: list[str], images: dict[str, Any]
) -> Any:
    """The labelled target images to score on (all of them), or None."""
    import tltf

    if "target_validation" not in options:
        return None
    folder = options["target_validation"]
    data = tltf.data.image_folder(folder, validation_split=0.0, **images)
    if data.class_names != list(class_names):
        raise DataError(
            f"--target-validation {folder!r} has classes {data.class_names}; --data "
            f"has {list(class_names)}. Give it the same class subfolders."
        )
    return data.train


def _count(images: Any) -> int:
    return int(sum(int(batch.shape[0]) for batch in images))


def tune(options: dict[str, Any]) -> int:
    """``tltf tune``: search learning rates for the data and backbone."""
    import tltf

    source = require_data(options, "tune")
    data, modality = load_data(options, source)
    backbone = options.get("backbone") or default_backbone(modality)
    kwargs = pick(options, "max_trials", "epochs")
    kwargs["directory"] = options.get("output", runs.TUNE_OUTPUT)
    if "weights" in options and modality == "image":
        weights = options["weights"]
        kwargs["weights"] = None if str(weights).lower() == "none" else weights
    if "image_size" in options and modality == "image":
        kwargs["input_shape"] = (*options["image_size"], 3)
    result = tltf.tune_learning_rate(backbone, data, **kwargs)
    print(result.summary())
    print(f"Search folder (run again to resume): {kwargs['directory']}")
    return 0


def evaluate(options: dict[str, Any]) -> int:
    """``tltf evaluate``: metrics report and plots for a saved model.

    Scores the held-out validation split of the training run by default (see
    `tltf.cli.evaluation`) and never replaces a report silently.
    """
    import tltf
    from tltf.evaluation.report import check_output_dir

    model, names = load_model(options.get("model"))
    source = require_data(options, "evaluate")
    folder = runs.model_file(options["model"]).parent
    run = runs.read_run(folder)
    kind = held_out.model_modality(model, run)
    held_out.check_modality(kind, held_out.source_modality(source), f"--{source}")
    plan = held_out.plan(options, source, run)
    out, note = held_out.report_folder(
        options.get("output"), folder, bool(options.get("overwrite"))
    )
    check_output_dir(out, bool(options.get("overwrite")))
    data_options = dict(plan.data_options)
    if source != "csv" and "image_size" not in data_options:
        data_options.update(_image_size_of(model))
    data, data_kind = load_data(data_options, source)
    held_out.check_modality(kind, data_kind, f"--{source}")
    dataset, count, what = held_out.pick_split(data, plan.split)
    print(f"Evaluating {what} ({plan.why}): {count} examples.")
    if note:
        print(note)
    report = tltf.evaluate(
        model,
        dataset,
        class_names=names or data.class_names,
        output_dir=out,
        overwrite=bool(options.get("overwrite")),
        **({"oos_data": read_oos(options["oos"], model)} if "oos" in options else {}),
    )
    _print_block(report.summary(), _report_lines(report))
    return 0


def _image_size_of(model: Any) -> dict[str, tuple[int, int]]:
    shape = model.inputs[0].shape
    if len(shape) == 4 and None not in shape[1:3]:
        return {"image_size": (int(shape[1]), int(shape[2]))}
    return {}


def export(options: dict[str, Any]) -> int:
    """``tltf export``: write a verified SavedModel."""
    import tltf

    model, names = load_model(options.get("model"))
    if "output" not in options:
        raise ConfigError(
            "Pass --output: the folder to create for the SavedModel, e.g. "
            "--output serving/my_model."
        )
    kwargs = pick(options, "overwrite", "verify", "quantize")
    if options.get("format") == "litert":
        path = tltf.export_litert(model, options["output"], class_names=names, **kwargs)
        checked = "checked with the LiteRT interpreter"
        if not kwargs.get("verify", True):
            checked = "not checked"
        print(f"LiteRT file ({checked}): {path}, metadata {path.with_suffix('.json')}")
        _print_rejection(tltf.read_export_metadata(path))
        return 0
    path = tltf.export_saved_model(
        model, options["output"], class_names=names, **kwargs
    )
    checked = (
        "reloaded in a fresh process and checked"
        if kwargs.get("verify", True)
        else "not checked"
    )
    print(f"Export ({checked}): {path}")
    _print_rejection(tltf.read_export_metadata(path))
    print(f"Inspect it: saved_model_cli show --dir {path} --all")
    return 0


def _print_rejection(metadata: dict[str, Any]) -> None:
    rejection = metadata.get("rejection")
    if rejection:
        threshold, temperature = rejection["threshold"], rejection["temperature"]
        print(
            f"Answers 'unknown' (class_index -1) below probability "
            f"{threshold:.3f} (temperature {temperature:.3f})."
        )
    if metadata.get("quantization"):
        print(f"Quantized: {metadata['quantization']['mode']}.")


def predict(options: dict[str, Any]) -> int:
    """``tltf predict``: top classes for image files or texts."""
    from tltf.cli.predict import predict_inputs

    inputs = options.get("inputs") or []
    result = predict_inputs(options.get("model"), inputs, options.get("top_k", 1))
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


def list_backbones(options: dict[str, Any]) -> int:
    """``tltf list-backbones``: registered bases, with one line each."""
    import tltf

    for name in tltf.list_backbones(**pick(options, "modality")):
        spec = tltf.get_backbone(name)
        print(f"{name:<32} {spec.modality:<6} {spec.description}")
    print("Also: hub:<url or SavedModel folder>, kerashub:<preset or folder>.")
    return 0


def demo(options: dict[str, Any]) -> int:
    """``tltf demo``: the offline end-to-end run."""
    from tltf.demo import run_demo

    run_demo(**pick(options, "epochs", output_dir="output"))
    return 0


def _run_record(options, source, data, modality, history) -> dict[str, Any]:
    settings = {k: v for k, v in options.items() if k != "inputs"}
    record = runs.run_record(data.class_names, modality, settings, history)
    record["data"] = held_out.data_record(source, options)
    return record


def _check_export_free(options: dict[str, Any], out: Path) -> None:
    """Refuses, before any training, an ``--export`` that would replace one."""
    if options.get("export") and runs.export_dir(out).exists():
        raise ExportError(
            f"Export path {str(runs.export_dir(out))!r} already exists. Pass another "
            "--output folder or remove the old export."
        )


def _report_and_export(
    model: Any,
    scored: Any,
    class_names: list[str],
    history: Any,
    out: Path,
    options: dict[str, Any],
) -> None:
    """Writes the run's report on ``scored`` (and the export), and prints both."""
    import tltf

    report = tltf.evaluate(
        model,
        scored,
        class_names=class_names,
        output_dir=runs.evaluation_dir(out),
        history=history,
        overwrite=True,
    )
    lines = [f"Model: {runs.model_path(out)}", f"Run record: {runs.record_path(out)}"]
    if (out / runs.ADAPTER_FILE).exists():
        lines.append(f"LoRA adapter and head: {out / runs.ADAPTER_FILE}")
    lines += _report_lines(report)
    if options.get("export"):
        path = tltf.export_saved_model(
            model, runs.export_dir(out), class_names=class_names
        )
        lines.append(f"Export (reloaded and checked): {path}")
    _print_block(report.summary(), lines)


def _save_run(model: Any, record: dict[str, Any], out: Path) -> None:
    """Saves the model and ``run.json``; a new run replaces the old one."""
    if runs.model_path(out).exists():
        print(f"Replacing the previous run in {out} (model, run record, report).")
    runs.save_run(model, out, record)


# --- printing ---


def _backbone_line(model: Any, backbone: str) -> str:
    from tltf.model import parts_of

    head = parts_of(model).head
    pooling = head.pooling if head is not None else None
    return f"Backbone: {backbone}" + (f" ({pooling} pooling)" if pooling else "")


def _report_lines(report: Any) -> list[str]:
    return [
        f"{kind.replace('_', ' ').capitalize()}: {path}"
        for kind, path in report.files.items()
    ]


def _print_block(summary: str, lines: list[str]) -> None:
    print()
    print(summary)
    print()
    for line in lines:
        print(line)
