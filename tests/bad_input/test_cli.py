"""Bad arguments to every ``tltf`` subcommand: one line, exit 2, no TensorFlow.

One row per bad argument: negative, zero and non-numeric numbers, missing
required flags, flags that conflict, paths that do not exist or are of the
wrong kind, and outputs that already hold a result. Each row must end with
exit status 2 and one line on stderr that names the flag and says what to
do, and must not import TensorFlow (these are all found before it loads).

All rows run in one fresh process posing as the ``tltf`` command (as the
console script, ``import tltf`` stays light there), one after the other;
after each row the process reports whether TensorFlow or Keras is in
``sys.modules``, so the first row that loads them is the one that fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


@dataclasses.dataclass(frozen=True)
class Row:
    """A bad command line and what its one error line must say.

    ``args`` may hold ``{ws}``, the workspace folder. ``names`` is what the
    message must name (the flag, or the path); ``todo`` what it must tell
    the user to do.
    """

    id: str
    args: str
    names: str
    todo: str


#: The workspace: files and folders the rows point at (see `workspace`).
#: run/ holds a run (model.keras and run.json), calibrated/ a calibrated
#: one, report/ a report, export/ a SavedModel, stuff/ unrelated files.
ROWS = [
    # --- numbers: negative, zero, not numbers ---
    Row(
        "train-epochs-negative",
        "train --data {ws}/images --epochs -1",
        "--epochs",
        "e.g. 3",
    ),
    Row(
        "train-epochs-word",
        "train --data {ws}/images --epochs three",
        "--epochs",
        "whole number",
    ),
    Row(
        "train-epochs-fraction",
        "train --data {ws}/images --epochs 2.5",
        "--epochs",
        "whole number",
    ),
    Row(
        "train-lora-rank-zero",
        "train --data {ws}/images --lora-rank 0",
        "--lora-rank",
        "at least 1",
    ),
    Row(
        "train-contrastive-epochs-negative",
        "train --csv {ws}/data.csv --contrastive-epochs -1",
        "--contrastive-epochs",
        "at least 0",
    ),
    Row(
        "train-contrastive-epochs-word",
        "train --csv {ws}/data.csv --contrastive-epochs auto",
        "--contrastive-epochs",
        "whole number",
    ),
    Row(
        "train-rate-negative",
        "train --data {ws}/images --learning-rate -1",
        "--learning-rate",
        "more than 0",
    ),
    Row(
        "train-rate-zero",
        "train --data {ws}/images --learning-rate 0",
        "--learning-rate",
        "more than 0",
    ),
    Row(
        "train-rate-word",
        "train --data {ws}/images --learning-rate fast",
        "--learning-rate",
        "e.g. 0.001",
    ),
    Row(
        "train-rate-nan",
        "train --data {ws}/images --learning-rate nan",
        "--learning-rate",
        "e.g. 0.001",
    ),
    Row(
        "train-batch-zero",
        "train --data {ws}/images --batch-size 0",
        "--batch-size",
        "at least 1",
    ),
    Row(
        "train-split-one",
        "train --data {ws}/images --validation-split 1",
        "--validation-split",
        "less than 1",
    ),
    Row(
        "train-split-negative",
        "train --data {ws}/images --validation-split -0.1",
        "--validation-split",
        "at least 0",
    ),
    Row(
        "train-size-zero",
        "train --data {ws}/images --image-size 0",
        "--image-size",
        "e.g. 224",
    ),
    Row(
        "train-size-word",
        "train --data {ws}/images --image-size big",
        "--image-size",
        "e.g. 224",
    ),
    Row(
        "train-size-too-small",
        "train --data {ws}/images --image-size 16",
        "--image-size 16",
        "pass --image-size 32",
    ),
    Row(
        "train-sequence-zero",
        "train --csv {ws}/data.csv --sequence-length 0",
        "--sequence-length",
        "at least 1",
    ),
    Row(
        "train-schedule-typo",
        "train --data {ws}/images --schedule gradul",
        "--schedule",
        "gradual",
    ),
    Row(
        "train-schedule-top-zero",
        'train --data {ws}/images --schedule \'{{"0":"top:0"}}\'',
        "--schedule",
        "top:k",
    ),
    Row(
        "train-schedule-bad-json",
        "train --data {ws}/images --schedule {{0:",
        "--schedule",
        "e.g.",
    ),
    Row(
        "train-schedule-epochs-order",
        'train --data {ws}/images --schedule \'{{"2":"all","1":"top:1"}}\'',
        "--schedule",
        "increasing",
    ),
    Row(
        "adapt-method",
        "adapt --data {ws}/images --target-data {ws}/images --method dan",
        "--method",
        "dann",
    ),
    Row(
        "adapt-epochs-zero",
        "adapt --data {ws}/images --target-data {ws}/images --epochs 0",
        "--epochs",
        "at least 1",
    ),
    Row(
        "adapt-weight-negative",
        "adapt --data {ws}/images --target-data {ws}/images --adaptation-weight -5",
        "--adaptation-weight",
        "at least 0",
    ),
    Row(
        "tune-trials-zero",
        "tune --data {ws}/images --max-trials 0",
        "--max-trials",
        "at least 1",
    ),
    Row(
        "tune-epochs-zero",
        "tune --data {ws}/images --epochs 0",
        "--epochs",
        "at least 1",
    ),
    Row(
        "evaluate-split",
        "evaluate --model {ws}/run --data {ws}/images --split test",
        "--split",
        "validation",
    ),
    Row(
        "calibrate-precision-zero",
        "calibrate --model {ws}/run --data {ws}/images --target-precision 0",
        "--target-precision",
        "e.g. 0.95",
    ),
    Row(
        "calibrate-precision-above-one",
        "calibrate --model {ws}/run --data {ws}/images --target-precision 1.5",
        "--target-precision",
        "at most 1",
    ),
    Row(
        "calibrate-drop-one",
        "calibrate --model {ws}/run --data {ws}/images --oos {ws}/images "
        "--max-accuracy-drop 1",
        "--max-accuracy-drop",
        "less than 1",
    ),
    Row(
        "export-format",
        "export --model {ws}/run --output {ws}/new --format onnx",
        "--format",
        "litert",
    ),
    Row(
        "export-quantize",
        "export --model {ws}/run --output {ws}/new --quantize int4",
        "--quantize",
        "int8",
    ),
    Row(
        "predict-top-k-zero",
        "predict --model {ws}/run --top-k 0 {ws}/file.txt",
        "--top-k",
        "at least 1",
    ),
    Row("list-modality", "list-backbones --modality audio", "--modality", "image"),
    Row(
        "demo-epochs-zero",
        "demo --output {ws}/new --epochs 0",
        "--epochs",
        "at least 1",
    ),
    Row(
        "unknown-flag",
        "train --data {ws}/images --epoch 3",
        "--epoch",
        "tltf train --help",
    ),
    Row(
        "predict-top-k-word",
        "predict --model {ws}/run --top-k all {ws}/file.txt",
        "--top-k",
        "whole number",
    ),
    # --- missing required flags ---
    Row("evaluate-no-model", "evaluate --data {ws}/images", "--model", "run folder"),
    Row("evaluate-no-data", "evaluate --model {ws}/run", "--data", "pass --data"),
    Row("export-no-model", "export --output {ws}/new", "--model", "run folder"),
    Row("export-no-output", "export --model {ws}/run", "--output", "e.g. --output"),
    Row("predict-no-model", "predict {ws}/file.txt", "--model", "export folder"),
    Row(
        "calibrate-no-data",
        "calibrate --model {ws}/run --target-precision 0.9",
        "--data",
        "pass --data",
    ),
    Row(
        "calibrate-no-rule",
        "calibrate --model {ws}/run --data {ws}/images",
        "--target-precision",
        "pass --target-precision",
    ),
    Row(
        "predict-no-inputs",
        "predict --model {ws}/run",
        "Nothing to classify",
        "pass image files",
    ),
    Row(
        "adapt-no-target",
        "adapt --data {ws}/images",
        "--target-data",
        "unlabelled images",
    ),
    Row(
        "adapt-no-data",
        "adapt --target-data {ws}/images",
        "--data",
        "one subfolder per class",
    ),
    Row("tune-no-data", "tune", "--data", "pass --data"),
    # --- flags that conflict ---
    Row(
        "train-two-sources",
        "train --data {ws}/images --csv {ws}/data.csv",
        "--data and --csv",
        "pass one data source",
    ),
    Row(
        "evaluate-two-sources",
        "evaluate --model {ws}/run --data {ws}/images --tfds mnist",
        "--data and --tfds",
        "pass one data source",
    ),
    Row(
        "train-csv-image-size",
        "train --csv {ws}/data.csv --image-size 64",
        "--image-size",
        "leave it out",
    ),
    Row(
        "train-csv-weights",
        "train --csv {ws}/data.csv --weights none",
        "--weights",
        "leave it out",
    ),
    Row(
        "train-images-text-column",
        "train --data {ws}/images --text-column review",
        "--text-column",
        "leave it out",
    ),
    Row(
        "train-tfds-text-column",
        "train --tfds imdb_reviews --text-column review",
        "--text-column",
        "leave it out",
    ),
    Row(
        "train-images-sequence-length",
        "train --data {ws}/images --sequence-length 64",
        "--sequence-length",
        "leave it out",
    ),
    Row(
        "evaluate-text-for-an-image-model",
        "evaluate --model {ws}/run --csv {ws}/data.csv",
        "--csv gives texts",
        "Pass --data",
    ),
    Row(
        "calibrate-images-for-a-text-model",
        "calibrate --model {ws}/text_run --data {ws}/images --target-precision 0.9",
        "--data gives images",
        "Pass --csv",
    ),
    Row(
        "train-flag-without-data",
        "train --backbone keras:resnet50",
        "--backbone",
        "pass --data",
    ),
    Row(
        "calibrate-drop-without-oos",
        "calibrate --model {ws}/run --data {ws}/images --target-precision 0.9 "
        "--max-accuracy-drop 0.02",
        "--max-accuracy-drop",
        "pass --oos",
    ),
    Row(
        "export-litert-folder",
        "export --model {ws}/run --format litert --output {ws}/mobile",
        "--output",
        ".tflite",
    ),
    # --- paths: missing, a file for a folder, a folder for a file ---
    Row("train-data-missing", "train --data {ws}/nope", "--data", "does not exist"),
    Row(
        "train-data-file",
        "train --data {ws}/file.txt",
        "is a file, not a folder",
        "Pass a folder",
    ),
    Row("train-csv-missing", "train --csv {ws}/nope.csv", "--csv", "does not exist"),
    Row(
        "train-csv-folder",
        "train --csv {ws}/images",
        "is a folder, not a file",
        "Pass a CSV",
    ),
    Row(
        "train-backbone-missing",
        "train --data {ws}/images --backbone {ws}/nope.keras",
        "--backbone",
        "Pass a .keras file",
    ),
    Row(
        "train-weights-missing",
        "train --data {ws}/images --weights {ws}/nope.h5",
        "--weights",
        "Pass imagenet, none",
    ),
    Row(
        "adapt-target-missing",
        "adapt --data {ws}/images --target-data {ws}/nope",
        "--target-data",
        "does not exist",
    ),
    Row(
        "adapt-target-file",
        "adapt --data {ws}/images --target-data {ws}/file.txt",
        "--target-data",
        "is a file",
    ),
    Row(
        "adapt-validation-missing",
        "adapt --data {ws}/images --target-data {ws}/images "
        "--target-validation {ws}/nope",
        "--target-validation",
        "Pass a folder",
    ),
    Row(
        "evaluate-model-missing",
        "evaluate --model {ws}/nope.keras --data {ws}/images",
        "--model",
        "does not exist",
    ),
    Row(
        "evaluate-model-folder",
        "evaluate --model {ws}/images --data {ws}/images",
        "without a model.keras",
        "Pass the model.keras",
    ),
    Row(
        "evaluate-model-export",
        "evaluate --model {ws}/export --data {ws}/images",
        "export folder",
        "Pass the model.keras",
    ),
    Row(
        "evaluate-model-not-keras",
        "evaluate --model {ws}/file.txt --data {ws}/images",
        "not a .keras file",
        "Pass the model.keras",
    ),
    Row(
        "evaluate-oos-missing",
        "evaluate --model {ws}/run --data {ws}/images --oos {ws}/nope.txt",
        "--oos",
        "Pass a text file",
    ),
    Row(
        "predict-model-missing",
        "predict --model {ws}/nope {ws}/file.txt",
        "--model",
        "does not exist",
    ),
    Row(
        "evaluate-oos-folder-for-text",
        "evaluate --model {ws}/text_run --csv {ws}/data.csv --oos {ws}/images",
        "--oos",
        "pass a text file",
    ),
    Row(
        "calibrate-oos-file-for-images",
        "calibrate --model {ws}/run --data {ws}/images --oos {ws}/file.txt",
        "--oos",
        "pass a folder",
    ),
    Row(
        "predict-model-folder",
        "predict --model {ws}/images {ws}/file.txt",
        "without a model.keras",
        "Pass the model.keras",
    ),
    Row(
        "config-missing",
        "train --config {ws}/nope.yaml",
        "--config",
        "Pass a YAML or JSON file",
    ),
    Row(
        "config-folder",
        "train --config {ws}/images",
        "is a folder",
        "Pass a YAML or JSON file",
    ),
    Row(
        "config-not-yaml", "train --config {ws}/broken.yaml", "--config", "YAML or JSON"
    ),
    Row(
        "config-unknown-key",
        "train --config {ws}/unknown_key.yaml",
        "epochz",
        "Known keys",
    ),
    Row(
        "config-bad-value",
        "train --config {ws}/bad_value.yaml",
        "epochs",
        "whole number",
    ),
    Row("config-bad-choice", "adapt --config {ws}/bad_choice.yaml", "method", "dann"),
    Row(
        "calibrate-two-rules",
        "calibrate --model {ws}/text_run --csv {ws}/data.csv --target-precision 0.9 "
        "--oos {ws}/file.txt",
        "--target-precision and --oos",
        "pass one",
    ),
    Row(
        "tune-output-run",
        "tune --data {ws}/images --output {ws}/run",
        "holds files but no search",
        "new or empty folder",
    ),
    Row(
        "tune-output-data",
        "tune --data {ws}/images --output {ws}/images",
        "holds files but no search",
        "new or empty folder",
    ),
    Row(
        "predict-empty-input",
        "predict --model {ws}/text_run 'good' ' '",
        "Input 2",
        "texts in quotes",
    ),
    Row(
        "train-data-twice",
        "train --data {ws}/images --data {ws}/stuff",
        "--data is given twice",
        "pass it once",
    ),
    Row(
        "predict-model-twice",
        "predict --model {ws}/run --model={ws}/text_run hello",
        "--model is given twice",
        "pass it once",
    ),
    Row(
        "train-backbone-not-a-zip",
        "train --data {ws}/images --backbone {ws}/not_a_model.keras",
        "is not a Keras model",
        "Pass a .keras file",
    ),
    Row(
        "export-tflite-without-litert",
        "export --model {ws}/run --output {ws}/new/model.tflite",
        "--output",
        "pass --format litert",
    ),
    Row(
        "config-empty",
        "train --config {ws}/empty.yaml",
        "--config",
        "leave --config out",
    ),
    # --- empty values: "" is no path (not the current folder) ---
    Row("train-data-empty", "train --data ''", "--data", "pass a FOLDER"),
    Row("train-csv-empty", "train --csv ' '", "--csv", "pass a FILE"),
    Row(
        "evaluate-output-empty",
        "evaluate --model {ws}/run --data {ws}/images --output ''",
        "--output",
        "pass a PATH",
    ),
    Row("predict-model-empty", "predict --model '' {ws}/file.txt", "--model", "PATH"),
    # --- CSV headers, read before TensorFlow loads ---
    Row("train-csv-empty-file", "train --csv {ws}/empty.csv", "--csv", "header row"),
    Row(
        "train-csv-no-text-column",
        "train --csv {ws}/other_columns.csv",
        "'review', 'stars'",
        "Pass --text-column",
    ),
    Row(
        "tune-csv-no-label-column",
        "tune --csv {ws}/data.csv --label-column stars",
        "'stars'",
        "Pass --label-column",
    ),
    Row(
        "evaluate-csv-tab-separated",
        "evaluate --model {ws}/text_run --csv {ws}/tabs.csv",
        "--csv",
        "name it .tsv",
    ),
    Row(
        "evaluate-model-not-a-zip",
        "evaluate --model {ws}/not_a_model.keras --data {ws}/images",
        "is not a Keras model",
        "Pass the model.keras",
    ),
    Row(
        "predict-model-not-a-zip",
        "predict --model {ws}/not_a_model.keras {ws}/file.txt",
        "is not a Keras model",
        "Pass the model.keras",
    ),
    # --- outputs that exist (the overwrite policy) ---
    Row(
        "train-output-run",
        "train --data {ws}/images --output {ws}/run",
        "--output",
        "Pass --overwrite",
    ),
    Row(
        "train-output-model-file",
        "train --data {ws}/images --output {ws}/run/model.keras",
        "--output",
        "run folder",
    ),
    Row(
        "train-output-file",
        "train --data {ws}/images --output {ws}/file.txt",
        "--output",
        "pass a folder",
    ),
    Row(
        "train-output-other-files",
        "train --data {ws}/images --output {ws}/stuff",
        "--output",
        "new or empty folder",
    ),
    Row(
        "train-output-other-files-overwrite",
        "train --data {ws}/images --output {ws}/stuff --overwrite",
        "--output",
        "new or empty folder",
    ),
    Row(
        "adapt-output-run",
        "adapt --data {ws}/images --target-data {ws}/images --output {ws}/run",
        "--output",
        "Pass --overwrite",
    ),
    Row("demo-output-run", "demo --output {ws}/run", "--output", "Pass --overwrite"),
    Row(
        "train-no-data-output-run",
        "train --output {ws}/run",
        "--output",
        "Pass --overwrite",
    ),
    Row(
        "demo-output-file",
        "demo --output {ws}/file.txt",
        "--output",
        "pass a folder",
    ),
    Row(
        "tune-output-file",
        "tune --data {ws}/images --output {ws}/file.txt",
        "--output",
        "pass a folder",
    ),
    Row(
        "export-output-file",
        "export --model {ws}/run --output {ws}/file.txt",
        "--output",
        "pass a folder path",
    ),
    Row(
        "evaluate-output-report",
        "evaluate --model {ws}/run --data {ws}/images --output {ws}/report",
        "--output",
        "Pass --overwrite",
    ),
    Row(
        "evaluate-output-file",
        "evaluate --model {ws}/run --data {ws}/images --output {ws}/file.txt",
        "--output",
        "pass a folder",
    ),
    Row(
        "evaluate-output-other-files",
        "evaluate --model {ws}/run --data {ws}/images --output {ws}/stuff",
        "--output",
        "new or empty folder",
    ),
    Row(
        "export-output-exists",
        "export --model {ws}/run --output {ws}/export",
        "--output",
        "Pass --overwrite",
    ),
    Row(
        "export-litert-exists",
        "export --model {ws}/run --format litert --output {ws}/model.tflite",
        "--output",
        "Pass --overwrite",
    ),
    Row(
        "calibrate-calibrated",
        "calibrate --model {ws}/calibrated --data {ws}/images --target-precision 0.9",
        "calibrated already",
        "Pass --overwrite",
    ),
]

#: The checkout under test (the subprocess must import this tltf).
REPOSITORY = Path(__file__).resolve().parents[2]

SUBCOMMANDS = {
    "train",
    "adapt",
    "tune",
    "evaluate",
    "calibrate",
    "export",
    "predict",
    "list-backbones",
    "demo",
}

#: Runs the rows in one process; prints one JSON result per row, up to the
#: first row that loads TensorFlow.
_RUNNER = r"""
import contextlib, io, json, shlex, sys
sys.argv[0] = "tltf"
from tltf.cli import main
for args in json.load(open(sys.argv[1])):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(shlex.split(args))
        except SystemExit as exit:
            code = exit.code
    heavy = sorted({"tensorflow", "keras"} & set(sys.modules))
    print(json.dumps({"code": code, "stderr": err.getvalue(), "heavy": heavy}))
    if heavy:  # Later rows would run with TensorFlow loaded: stop here.
        break
"""


def workspace(root: Path) -> Path:
    """Files and folders the rows point at; nothing a model could load."""
    (root / "images" / "cats").mkdir(parents=True)
    (root / "images" / "cats" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (root / "file.txt").write_text("hello\n")
    (root / "data.csv").write_text("text,label\nhello,a\nbye,b\n")
    for run, modality in (
        ("run", "image"),
        ("calibrated", "image"),
        ("text_run", "text"),
    ):
        (root / run).mkdir()
        _fake_model(root / run / "model.keras")
        (root / run / "run.json").write_text(json.dumps({"modality": modality}))
    (root / "calibrated" / "calibration.json").write_text("{}")
    (root / "report").mkdir()
    (root / "report" / "report.json").write_text("{}")
    (root / "export").mkdir()
    (root / "export" / "saved_model.pb").write_bytes(b"")
    (root / "stuff").mkdir()
    (root / "stuff" / "notes.md").write_text("mine")
    (root / "model.tflite").write_bytes(b"")
    (root / "broken.yaml").write_text("epochs: [3\n")
    (root / "unknown_key.yaml").write_text("epochz: 3\n")
    (root / "bad_value.yaml").write_text("epochs: -1\n")
    (root / "bad_choice.yaml").write_text("method: dan\n")
    (root / "empty.yaml").write_text("# nothing set yet\n")
    (root / "empty.csv").write_text("")
    (root / "other_columns.csv").write_text("review,stars\ngreat,5\nbad,1\n")
    (root / "tabs.csv").write_text("text\tlabel\nhello\ta\nbye\tb\n")
    (root / "not_a_model.keras").write_text("not a zip archive")
    return root


def _fake_model(path: Path) -> None:
    """A zip archive named like a model: passes the checks, never loaded."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Each row's exit code, stderr and heavy modules, by row id."""
    ws = workspace(tmp_path_factory.mktemp("bad_cli"))
    rows = [row.args.format(ws=ws) for row in ROWS]
    table = ws / "rows.json"
    table.write_text(json.dumps(rows))
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, str(table)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPOSITORY)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    return {row.id: json.loads(line) for row, line in zip(ROWS, lines)}


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_a_bad_argument_fails_in_one_line_before_tensorflow(results, row):
    result = results.get(row.id)
    assert result is not None, "not run: an earlier row loaded TensorFlow"
    lines = result["stderr"].strip().splitlines()
    assert result["code"] == 2, result
    assert len(lines) == 1, result["stderr"]
    line = lines[0]
    command = row.args.split()[0]
    assert line.startswith(f"tltf {command}: error: "), line
    assert row.names in line, line
    assert row.todo.lower() in line.lower(), line
    assert "Traceback" not in line
    assert result["heavy"] == [], f"{row.id} imported {result['heavy']}"


def test_every_subcommand_has_bad_argument_rows():
    assert {row.args.split()[0] for row in ROWS} == SUBCOMMANDS
    assert len({row.id for row in ROWS}) == len(ROWS)


def test_the_rows_cover_every_flag_that_takes_a_number():
    """A flag parsed as a number is tried with a bad one in some row."""
    from tltf.cli.subcommands import build_parsers

    _, parsers = build_parsers()
    numeric = {
        action.option_strings[-1]
        for parser in parsers.values()
        for action in parser.actions.values()
        if action.type is not None and action.option_strings
    }
    tried = {row.names.split()[0] for row in ROWS if row.names.startswith("--")}
    assert numeric <= tried, sorted(numeric - tried)
