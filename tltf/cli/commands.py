"""The ``tltf`` subcommands, on options already merged and cleaned.

Each handler takes the dict of settings the user gave (see
`tltf.cli.options.merge_config`), calls the public library, prints where its
results went, and returns the exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tltf.cli import evaluation as held_out
from tltf.cli.options import (
    DEFAULT_OUTPUT,
    MODEL_FILE,
    build_model,
    data_source,
    load_data,
    load_model,
    model_file,
    parse_schedule_flag,
    pick,
    read_run,
    require_data,
    write_run,
)
from tltf.errors import ConfigError, ExportError
from tltf.training.recipes import fine_tune

#: Epochs after the frozen stage when neither flag nor config says
#: (`tltf.fine_tune` has no default: it needs to be told).
DEFAULT_EPOCHS = 3
EVALUATION_DIR = held_out.EVALUATION_DIR
EXPORT_DIR = "export"


def run(command: str, options: dict[str, Any]) -> int:
    """Runs subcommand ``command`` with ``options``; returns the exit status."""
    handlers: dict[str, Callable[[dict[str, Any]], int]] = {
        "train": train,
        "tune": tune,
        "evaluate": evaluate,
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
    import tltf

    out = Path(options.get("output", DEFAULT_OUTPUT))
    if options.get("export") and (out / EXPORT_DIR).exists():
        raise ExportError(
            f"Export path {str(out / EXPORT_DIR)!r} already exists. Pass another "
            "--output folder or remove the old export."
        )
    data, modality = load_data(options, source)
    print(
        f"Data: {data.num_train} training, {data.num_validation} validation "
        f"examples, classes {data.class_names}"
    )
    model = build_model(options, data.num_classes, modality)
    print(_backbone_line(model, options.get("backbone") or _default_backbone(modality)))
    kwargs = pick(options, "epochs")
    if "schedule" in options:
        kwargs["schedule"] = parse_schedule_flag(options["schedule"])
    kwargs.setdefault("epochs", DEFAULT_EPOCHS)
    history = fine_tune(model, data.train, data.validation, **kwargs)
    record = _run_record(options, data, modality, history)
    record["data"] = held_out.data_record(source, options)
    _save_run(model, record, out)
    report = tltf.evaluate(
        model, data, output_dir=out / EVALUATION_DIR, history=history, overwrite=True
    )
    lines = [f"Model: {out / MODEL_FILE}", f"Run record: {out / 'run.json'}"]
    lines += _report_lines(report)
    if options.get("export"):
        path = tltf.export_saved_model(
            model, out / EXPORT_DIR, class_names=data.class_names
        )
        lines.append(f"Export (reloaded and checked): {path}")
    _print_block(report.summary(), lines)
    return 0


def tune(options: dict[str, Any]) -> int:
    """``tltf tune``: search learning rates for the data and backbone."""
    import tltf

    source = require_data(options, "tune")
    data, modality = load_data(options, source)
    backbone = options.get("backbone") or _default_backbone(modality)
    kwargs = pick(options, "max_trials", "epochs")
    kwargs["directory"] = options.get("output", f"{DEFAULT_OUTPUT}-tune")
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
    from tltf.evaluation import check_output_dir

    model, names = load_model(options.get("model"))
    source = require_data(options, "evaluate")
    folder = model_file(options["model"]).parent
    run = read_run(folder)
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
    kwargs = pick(options, "overwrite", "verify")
    path = tltf.export_saved_model(
        model, options["output"], class_names=names, **kwargs
    )
    checked = (
        "reloaded in a fresh process and checked"
        if kwargs.get("verify", True)
        else "not checked"
    )
    print(f"Export ({checked}): {path}")
    print(f"Inspect it: saved_model_cli show --dir {path} --all")
    return 0


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


def _save_run(model: Any, record: dict[str, Any], out: Path) -> None:
    """Saves the model and ``run.json``; a new run replaces the old one."""
    if (out / MODEL_FILE).exists():
        print(f"Replacing the previous run in {out} (model, run record, report).")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / MODEL_FILE)
    write_run(out, record)


# --- printing ---


def _backbone_line(model: Any, backbone: str) -> str:
    from tltf.heads import Head

    heads = [layer for layer in model.layers if isinstance(layer, Head)]
    pooling = getattr(heads[0], "pooling", None) if heads else None
    return f"Backbone: {backbone}" + (f" ({pooling} pooling)" if pooling else "")


def _default_backbone(modality: str) -> str:
    from tltf.cli.options import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE

    return DEFAULT_TEXT_BACKBONE if modality == "text" else DEFAULT_IMAGE_BACKBONE


def _run_record(options, data, modality, history) -> dict[str, Any]:
    return {
        "class_names": list(data.class_names),
        "modality": modality,
        "options": {k: v for k, v in options.items() if k != "inputs"},
        "history": getattr(history, "history", history),
    }


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
