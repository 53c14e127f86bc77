"""``tltf train``, ``adapt``, ``tune``, ``demo`` and ``list-backbones``.

Each handler takes the options (checked before TensorFlow loaded,
`tltf.cli.checks`), calls the public library, prints where its results went,
and returns the exit status. A training run is written whole into a
temporary folder beside its run folder and swapped in at the end
(`tltf.runs.writing_run`): the model, ``run.json``, the report and plots and
the export of one run, or the previous run untouched.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import tltf
from tltf import files, runs
from tltf.cli import held_out
from tltf.cli.checks import data_source
from tltf.cli.loading import (
    build_model,
    default_backbone,
    image_base,
    load_data,
    pick,
)
from tltf.demo import run_demo
from tltf.errors import DataError
from tltf.evaluation import plots

#: Epochs after the frozen stage when neither flag nor config says
#: (`tltf.fine_tune` has no default: it needs to be told).
DEFAULT_EPOCHS = 3
#: The head `tltf adapt` builds. Adaptation changes what the output layer
#: reads, so something before it must train: a hidden layer (DANN's
#: bottleneck) on the frozen pretrained base, fast and hard to break.
ADAPT_HIDDEN_UNITS = (256,)


def progress() -> int | str:
    """Keras's progress bars on a terminal; one line per epoch in a log file.

    Keras redraws its bars with carriage returns and colour codes whenever
    it runs on Linux; written to a file they are noise.
    """
    return "auto" if sys.stdout.isatty() else 2


# --- train ---


def train(options: dict[str, Any]) -> int:
    """``tltf train``: load, build, fine-tune, save, evaluate, maybe export."""
    source = data_source(options)
    if source is None:
        print("No data given (--data, --csv or --tfds): running the offline demo.")
        return demo(options)
    out = Path(options.get("output", runs.DEFAULT_OUTPUT))
    data, modality = load_data(options, source)
    print(
        f"Data: {data.num_train} training, {data.num_validation} validation "
        f"examples, classes {data.class_names}"
    )
    model = build_model(options, data.num_classes, modality)
    print(_backbone_line(model, options.get("backbone") or default_backbone(modality)))
    kwargs = pick(options, "epochs", "lora_rank", "schedule", "contrastive_epochs")
    kwargs.setdefault("epochs", DEFAULT_EPOCHS)
    history = tltf.fine_tune(
        model, data.train, data.validation, verbose=progress(), **kwargs
    )
    record = _run_record(options, source, data, modality, history)
    _write_run(model, record, data, data.class_names, history, out, options)
    return 0


# --- adapt ---


def adapt(options: dict[str, Any]) -> int:
    """``tltf adapt``: train on labelled source images, adapt to unlabelled ones.

    Saves the run like ``train`` (model, ``run.json``, ``evaluation/``, maybe
    ``export/``); the report scores the labelled target validation images
    when given, else the source's held-out split.
    """
    out = Path(options.get("output", runs.ADAPT_OUTPUT))
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
    tltf.adapt_domain(
        model, data.train, target, validation_data=scored, verbose=progress(), **kwargs
    )
    history = model.history
    record = _run_record(options, "data", data, "image", history)
    record["adaptation"] = getattr(history, "adaptation", None)
    record["method"] = history.method
    record["pseudo_labels"] = history.pseudo_labels
    print(_method_line(history.method, history.pseudo_labels))
    print(_check_line(record["adaptation"]))
    record["target"] = {
        key: str(Path(options[key]).resolve())
        for key in ("target_data", "target_validation")
        if key in options
    }
    if scored is None:
        print("No --target-validation: the report scores the source's held-out split.")
    scored = scored if scored is not None else data
    _write_run(model, record, scored, data.class_names, history, out, options)
    return 0


def _method_line(method: str, pseudo_labels: int | None) -> str:
    """Which method adapted, and what self-training labelled, in one line."""
    if pseudo_labels is None:
        return f"Method: {method}."
    return (
        f"Method: {method}, then self-training on the {pseudo_labels} target "
        "images it labelled with the most confidence."
    )


def _check_line(verdict: Mapping[str, Any] | None) -> str:
    """What the do-no-harm check decided, in one line."""
    if not verdict:
        return "Do-no-harm check: not run."
    kept = (
        "the adapted model"
        if verdict["kept"] == "adapted"
        else ("the model trained on the source alone")
    )
    return (
        f"Do-no-harm check ({verdict['criterion']}): kept {kept}: {verdict['reason']}."
    )


def _target_validation(
    options: Mapping[str, Any], class_names: list[str], images: dict[str, Any]
) -> Any:
    """The labelled target images to score on (all of them), or None."""
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


# --- tune ---


def tune(options: dict[str, Any]) -> int:
    """``tltf tune``: search learning rates for the data and backbone."""
    source = data_source(options)
    data, modality = load_data(options, source)
    backbone = options.get("backbone") or default_backbone(modality)
    kwargs = pick(options, "max_trials", "epochs")
    directory = Path(options.get("output", runs.TUNE_OUTPUT))
    if modality == "image":
        kwargs.update(image_base(options))
    verbose = 1 if progress() == "auto" else 2
    result = tltf.tune_learning_rate(
        backbone, data, directory=directory, verbose=verbose, **kwargs
    )
    print(result.summary())
    earlier = len(result.trials) - result.new_trials
    if earlier:
        print(f"Resumed: {earlier} trial(s) of an earlier run in {directory}.")
    with files.atomic_path(directory / runs.TRIALS_FILE) as temp:
        plots.tuning_trials(result, temp)
    print(f"Trials: {directory / runs.TRIALS_FILE}")
    print(f"Search folder (run again to resume): {directory}")
    return 0


# --- demo and list-backbones ---


def demo(options: dict[str, Any]) -> int:
    """``tltf demo``: the offline end-to-end run."""
    run_demo(**pick(options, "epochs", output_dir="output"), verbose=progress())
    return 0


def list_backbones(options: dict[str, Any]) -> int:
    """``tltf list-backbones``: registered bases, with one line each."""
    for name in tltf.list_backbones(**pick(options, "modality")):
        spec = tltf.get_backbone(name)
        print(f"{name:<32} {spec.modality:<6} {spec.description}")
    print("Also: hub:<url or SavedModel folder>, kerashub:<preset or folder>.")
    return 0


# --- the run folder ---


def _run_record(options, source, data, modality, history) -> dict[str, Any]:
    settings = {k: v for k, v in options.items() if k not in ("inputs", "overwrite")}
    record = runs.run_record(data.class_names, modality, settings, history)
    record["data"] = held_out.data_record(source, options)
    return record


def _write_run(
    model: Any,
    record: dict[str, Any],
    scored: Any,
    class_names: list[str],
    history: Any,
    out: Path,
    options: Mapping[str, Any],
) -> None:
    """Writes the whole run (model, record, report, export) and prints it.

    Everything goes into a temporary folder that replaces ``out`` only when
    complete; an older run there (checked before training: `--overwrite`)
    stays whole until then.
    """
    replacing = runs.is_run(out)
    with runs.writing_run(out) as temp:
        runs.save_run(model, temp, record)
        report = tltf.evaluate(
            model,
            scored,
            class_names=class_names,
            output_dir=runs.evaluation_dir(temp),
            history=history,
        )
        if options.get("export"):
            tltf.export_saved_model(
                model, runs.export_dir(temp), class_names=class_names
            )
        written = {
            kind: runs.final_path(path, temp, out)
            for kind, path in report.files.items()
        }
        has_adapter = (temp / runs.ADAPTER_FILE).exists()
    lines = [f"Model: {runs.model_path(out)}", f"Run record: {runs.record_path(out)}"]
    if has_adapter:
        lines.append(f"LoRA adapter and head: {out / runs.ADAPTER_FILE}")
    lines += report_lines(written)
    if options.get("export"):
        lines.append(f"Export (reloaded and checked): {runs.export_dir(out)}")
    if replacing:
        lines.append(f"(The previous run in {out} was replaced.)")
    print_block(report.summary(), lines)


# --- printing ---


def _backbone_line(model: Any, backbone: str) -> str:
    """``"Backbone: <name> (<pooling> pooling)"``, in the builders' words."""
    pooling = model.head.pooling
    if model.inputs[0].dtype == "string":  # build_text_classifier's names
        pooling = "mean" if pooling == "avg" else "cls"
    return f"Backbone: {backbone}" + (f" ({pooling} pooling)" if pooling else "")


def report_lines(files: Mapping[str, Any]) -> list[str]:
    """``"Confusion matrix: <path>"`` for each file of a report."""
    return [
        f"{kind.replace('_', ' ').capitalize()}: {path}" for kind, path in files.items()
    ]


def print_block(summary: str, lines: list[str]) -> None:
    print()
    print(summary)
    print()
    for line in lines:
        print(line)
