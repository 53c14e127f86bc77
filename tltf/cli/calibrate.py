"""``tltf calibrate``: out-of-scope rejection for a trained model.

Fits the temperature and rejection threshold of `tltf.calibrate_rejection`
on the run's held-out validation split, or all of a separate file (the split
is picked as ``tltf evaluate`` picks it; ``--split`` overrides), saves
the calibrated model over the ``.keras`` file (written atomically; the
weights do not change) and writes ``calibration.json`` and the reliability
diagram ``reliability.png`` next to it. A model calibrated already (its
``calibration.json`` exists) is calibrated again only with ``--overwrite``,
checked before TensorFlow loads. Every later ``tltf evaluate``, ``export``
and ``predict`` of that model answers ``unknown`` below the threshold.
"""

from __future__ import annotations

from typing import Any

import tltf
from tltf import files, runs
from tltf.cli import held_out
from tltf.cli.loading import (
    load_model,
    pick,
    read_oos,
)
from tltf.evaluation import plots


def calibrate(options: dict[str, Any]) -> int:
    """Runs ``tltf calibrate`` with the checked ``options``."""
    model, _ = load_model(options["model"])
    file = runs.model_file(options["model"])
    scored = held_out.load_scored(model, options, file.parent)
    print(f"Calibrating on {scored.what} ({scored.count} examples).")
    kwargs = pick(options, "target_precision", "max_accuracy_drop")
    if "oos" in options:
        kwargs["oos_data"] = read_oos(options["oos"], model)
    result = tltf.calibrate_rejection(model, scored.dataset, **kwargs)
    runs.save_model(model, file)
    record = files.write_json(file.parent / runs.CALIBRATION_FILE, result.to_dict())
    with files.atomic_path(file.parent / runs.RELIABILITY_FILE) as temp:
        plots.reliability_diagram(result, temp)
    print(summary(result))
    print(f"Calibrated model: {file}")
    print(f"Calibration: {record}")
    print(f"Reliability diagram: {file.parent / runs.RELIABILITY_FILE}")
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
