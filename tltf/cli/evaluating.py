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
from tltf.cli.loading import load_model, read_oos
from tltf.cli.training import print_block, report_lines
from tltf.errors import ConfigError
from tltf.evaluation.predictions import calibration_of


def evaluate(options: dict[str, Any]) -> int:
    """Runs ``tltf evaluate`` with the checked ``options``."""
    overwrite = bool(options.get("overwrite"))
    model, names = load_model(options["model"])
    folder = runs.model_file(options["model"]).parent
    if "oos" in options and calibration_of(model)[1] is None:
        raise ConfigError(
            f"--oos scores the 'unknown' answer, and {str(folder)!r} has no "
            f"threshold yet: run tltf calibrate --model {folder} first, or leave "
            "--oos out."
        )
    out, note = held_out.report_folder(options.get("output"), folder, overwrite)
    scored = held_out.load_scored(model, options, folder)
    print(f"Evaluating {scored.what} ({scored.why}): {scored.count} examples.")
    if note:
        print(note)
    oos = {"oos_data": read_oos(options["oos"], model)} if "oos" in options else {}
    # The report and its plots replace an older report whole, or not at all.
    with files.atomic_path(out, directory=True) as temp:
        report = tltf.evaluate(
            model,
            scored.dataset,
            class_names=names or scored.class_names,
            output_dir=temp,
            **oos,
        )
    written = {kind: Path(out) / Path(path).name for kind, path in report.files.items()}
    print_block(report.summary(), report_lines(written))
    return 0
