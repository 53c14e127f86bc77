"""The overwrite policy of the command line, checked before TensorFlow loads.

The same for ``train``, ``adapt``, ``demo``, ``evaluate``, ``calibrate`` and
``export``: a result already at the output (a run, a report, a calibration,
an export) is replaced only with ``--overwrite``; without it the command
stops before any work, naming the path and the two ways on (``--overwrite``
or another ``--output``). A run folder and a report folder are replaced
whole (`tltf.runs.writing_run`), so each holds one result, never a mix, and
a folder that holds other files is never used as one. ``tltf tune`` resumes
the search its folder holds (KerasTuner's way) instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tltf import runs
from tltf.cli.parsing import ArgumentsError

Options = Mapping[str, Any]


def run_output(options: Options, default: str) -> Path:
    """The run folder can be written: new, empty, or a run with --overwrite."""
    out = Path(options.get("output", default))
    given = "--output" if "output" in options else "the default --output"
    if out.suffix == ".keras":
        raise ArgumentsError(
            f"{given} {str(out)!r} names a file; it takes the run folder, which "
            f"gets {runs.MODEL_FILE}, {runs.RUN_FILE} and the report: pass e.g. "
            f"--output {out.with_suffix('')}."
        )
    if out.is_file():
        raise ArgumentsError(
            f"{given} {str(out)!r} is a file; pass a folder for the run."
        )
    if runs.is_run(out):
        if not options.get("overwrite"):
            raise ArgumentsError(
                f"{given} {str(out)!r} holds a run already. Pass --overwrite to "
                "replace it (the old run stays until the new one is complete), or "
                "another --output."
            )
    elif out.is_dir() and any(out.iterdir()):
        raise ArgumentsError(
            f"{given} {str(out)!r} holds files but no tltf run; a run replaces its "
            "folder whole, so pass a new or empty folder."
        )
    return out


def report_output(options: Options) -> None:
    """The report folder is new, empty, or a report with ``--overwrite``.

    A report replaces its folder whole, so a folder that holds other files
    is refused.
    """
    if "output" not in options:
        return  # A new evaluation-N/ folder, or evaluation/ with --overwrite.
    out = Path(options["output"])
    if out.is_file():
        raise ArgumentsError(
            f"--output {str(out)!r} is a file; pass a folder for the report and plots."
        )
    if (out / runs.REPORT_FILE).exists():
        if not options.get("overwrite"):
            raise ArgumentsError(
                f"--output {str(out)!r} holds a report already "
                f"({runs.REPORT_FILE}). Pass --overwrite to replace it, or another "
                "--output."
            )
    elif out.is_dir() and any(out.iterdir()):
        raise ArgumentsError(
            f"--output {str(out)!r} holds files but no report; a report replaces "
            "its folder whole, so pass a new or empty folder."
        )


def export_output(options: Options) -> None:
    """A new export path, or an existing one with ``--overwrite``."""
    out = Path(options["output"])
    if options.get("format") == "litert":
        if out.suffix != ".tflite":
            raise ArgumentsError(
                f"--output {str(out)!r}: with --format litert, pass the .tflite "
                "file to write, e.g. --output mobile/model.tflite."
            )
        taken = [p for p in (out, out.with_suffix(".json")) if p.exists()]
    elif out.suffix == ".tflite":
        raise ArgumentsError(
            f"--output {str(out)!r} names a LiteRT file, and a SavedModel is a "
            "folder: pass --format litert to write a .tflite file, or a folder path."
        )
    elif out.is_file():
        raise ArgumentsError(
            f"--output {str(out)!r} is a file; a SavedModel is a folder: pass a "
            "folder path."
        )
    else:
        taken = [out] if out.exists() else []
    if taken and not options.get("overwrite"):
        raise ArgumentsError(
            f"--output {str(taken[0])!r} already exists. Pass --overwrite to "
            "replace it, or another --output."
        )


def calibration_output(options: Options, model_file: Path) -> None:
    """A model calibrated already is calibrated again only with ``--overwrite``."""
    calibration = model_file.parent / runs.CALIBRATION_FILE
    if calibration.exists() and not options.get("overwrite"):
        raise ArgumentsError(
            f"{str(model_file)!r} is calibrated already ({calibration} exists). "
            "Pass --overwrite to calibrate it again."
        )


def search_output(options: Options) -> None:
    """``tltf tune``'s folder: new, or a search to resume; not a file."""
    if "output" in options and Path(options["output"]).is_file():
        raise ArgumentsError(
            f"--output {options['output']!r} is a file; pass a folder for the search."
        )
    out = Path(options.get("output", runs.TUNE_OUTPUT))
    if out.is_dir() and any(out.iterdir()) and not _holds_search(out):
        raise ArgumentsError(
            f"--output {str(out)!r} holds files but no search; the search would "
            "write among them: pass a new or empty folder, or the folder of a "
            "search to resume."
        )


def _holds_search(folder: Path) -> bool:
    """A folder tltf tune wrote: its trials plot, or a KerasTuner project."""
    return (folder / runs.TRIALS_FILE).is_file() or any(folder.glob("*/oracle.json"))
