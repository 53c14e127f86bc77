"""``tltf evaluate``: a metrics report and plots for a trained model.

Scores the held-out validation split of the training run by default (see
`tltf.cli.held_out`) and never replaces a report unless told
(``--overwrite``, checked before TensorFlow loaded).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tltf
from tltf import files, runs
from tltf.cli import held_out
from tltf.cli.checks import check_modality, data_source, source_modality
from tltf.cli.loading import (
    image_size_of,
    load_data,
    load_model,
    model_modality,
    read_oos,
)
from tltf.cli.training import print_block, report_lines


def evaluate(options: dict[str, Any]) -> int:
    """Runs ``tltf evaluate`` with the checked ``options``."""
    source = data_source(options)
    overwrite = bool(options.get("overwrite"))
    model, names = load_model(options["model"])
    folder = runs.model_file(options["model"]).parent
    run = runs.read_run(folder)
    kind = model_modality(model, run)
    check_modality(kind, source_modality(source), f"--{source}")
    plan = held_out.plan(options, source, run)
    out, note = held_out.report_folder(options.get("output"), folder, overwrite)
    data_options = dict(plan.data_options)
    if source != "csv" and "image_size" not in data_options:
        data_options.update(image_size_of(model))
    data, data_kind = load_data(data_options, source)
    check_modality(kind, data_kind, f"--{source}")
    dataset, count, what = held_out.pick_split(data, plan.split)
    print(f"Evaluating {what} ({plan.why}): {count} examples.")
    if note:
        print(note)
    oos = {"oos_data": read_oos(options["oos"], model)} if "oos" in options else {}
    # The report and its plots replace an older report whole, or not at all.
    with files.atomic_path(out, directory=True) as temp:
        report = tltf.evaluate(
            model,
            dataset,
            class_names=names or data.class_names,
            output_dir=temp,
            **oos,
        )
    written = {kind: Path(out) / Path(path).name for kind, path in report.files.items()}
    print_block(report.summary(), report_lines(written))
    return 0
