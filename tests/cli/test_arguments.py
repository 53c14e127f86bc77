"""Parsing the command line: the subcommand table, flags, config files, help.

Everything here runs before TensorFlow loads in the ``tltf`` process; the
bad arguments themselves are the rows of tests/bad_input/test_cli.py.
"""

from __future__ import annotations

import argparse
import inspect
import json
import re
import textwrap

import pytest

import tltf
from tltf import runs
from tltf.cli import build_parser, main
from tltf.cli.config import merge_config
from tltf.cli.parsing import parse_schedule, parse_size
from tltf.cli.subcommands import SUBCOMMANDS, build_parsers

# --- the table ---


def test_one_row_per_subcommand_with_a_handler_that_exists():
    import importlib

    names = [command.name for command in SUBCOMMANDS]
    assert len(set(names)) == len(names) == 9
    _, parsers = build_parsers()
    assert set(parsers) == set(names)
    for command in SUBCOMMANDS:
        module, _, function = command.handler.partition(":")
        assert callable(getattr(importlib.import_module(module), function)), command
        assert command.first_example().startswith(f"tltf {command.name}")


def test_tltf_help_lists_every_subcommand_with_its_first_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in SUBCOMMANDS:
        assert command.name in out and command.first_example() in out
    # What a run folder holds, the overwrite policy, the exit statuses.
    assert "no optimizer" in out and "--overwrite" in out and "Exit status" in out


def test_help_teaches_by_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and "tltf train --data flowers/" in out
    assert "--config" in out and "--schedule" in out and "--overwrite" in out


def test_help_writes_the_proper_names():
    """KerasTuner, SavedModel, LiteRT, MiniLM in prose; ids only as values."""
    parser, parsers = build_parsers()
    prose = [parser.description, parser.epilog]
    for sub in parsers.values():
        prose += [sub.description]
        for action in sub.actions.values():
            text = action.help or ""
            for choice in action.choices or ():
                text = re.sub(rf"\b{choice}\b", "", text)  # the value itself
            prose.append(re.sub(r"\b\w+:[\w./-]+", "", text))  # registry names
    # Command lines and flags with their values are ids too.
    text = re.sub(r"(tltf \S+|--[\w-]+)( [\w.:/-]+)?", "", "\n".join(prose))
    for right in ("KerasTuner", "SavedModel", "LiteRT", "MiniLM"):
        assert right in text, right
    for right in ("KerasTuner", "SavedModel", "LiteRT", "MiniLM"):
        wrongly = [
            w for w in re.findall(r"[A-Za-z]+", text) if w.lower() == right.lower()
        ]
        assert set(wrongly) == {right}, wrongly
    assert "keras tuner" not in text.lower() and "saved model" not in text.lower()


def test_defaults_said_in_help_are_the_librarys():
    """``(default N)`` in a flag's help is the library function's default."""
    from tltf.cli import training

    said = {
        ("tune", "--max-trials"): (tltf.tune_learning_rate, "max_trials"),
        ("tune", "--epochs"): (tltf.tune_learning_rate, "epochs"),
        ("adapt", "--epochs"): (tltf.adapt_domain, "epochs"),
        ("adapt", "--adaptation-weight"): (tltf.adapt_domain, "weight"),
        ("train", "--batch-size"): (tltf.data.image_folder, "batch_size"),
        ("train", "--validation-split"): (tltf.data.image_folder, "validation_split"),
        ("train", "--text-column"): (tltf.data.text_csv, "text_column"),
        ("train", "--label-column"): (tltf.data.text_csv, "label_column"),
        ("train", "--sequence-length"): (tltf.build_text_classifier, "sequence_length"),
        ("demo", "--epochs"): (tltf.demo.run_demo, "epochs"),
    }
    _, parsers = build_parsers()
    for (command, flag), (function, name) in said.items():
        action = parsers[command].actions[flag.lstrip("-").replace("-", "_")]
        default = inspect.signature(function).parameters[name].default
        assert re.search(rf"default:? [^)]*\b{default}\b", action.help), (flag, default)
    train_epochs = parsers["train"].actions["epochs"].help
    assert f"default {training.DEFAULT_EPOCHS}" in train_epochs


def test_the_command_line_uses_the_library_defaults():
    from tltf.builders import DEFAULT_IMAGE_BACKBONE, DEFAULT_TEXT_BACKBONE
    from tltf.cli.loading import default_backbone

    assert default_backbone("image") == DEFAULT_IMAGE_BACKBONE
    assert default_backbone("text") == DEFAULT_TEXT_BACKBONE
    assert tltf.get_backbone(DEFAULT_IMAGE_BACKBONE).modality == "image"
    assert DEFAULT_TEXT_BACKBONE.startswith("kerashub:")


def test_the_smallest_image_size_is_that_of_the_keras_bases():
    from tltf.cli.checks import KERAS_MIN_IMAGE_SIZE

    sizes = {
        tltf.get_backbone(name).min_size
        for name in tltf.list_backbones("image")
        if name.startswith("keras:")
    }
    assert sizes == {KERAS_MIN_IMAGE_SIZE}


def test_the_csv_columns_checked_first_are_the_librarys():
    from tltf.cli.checks import CSV_COLUMNS

    parameters = inspect.signature(tltf.data.text_csv).parameters
    assert {k: parameters[k].default for k in CSV_COLUMNS} == CSV_COLUMNS


# --- values ---


def test_image_sizes_from_flags_and_config_files(tmp_path, capsys):
    parser = build_parser()
    args = parser.parse_args(["train", "--image-size", "160x224"])
    assert args.image_size == (160, 224)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["train", "--image-size", "0"])
    assert exit_info.value.code == 2
    assert "--image-size: takes SIZE or HEIGHTxWIDTH" in capsys.readouterr().err
    config = tmp_path / "run.yaml"
    config.write_text("image-size: 96,128\n")
    flags = parser.parse_args(["train", "--config", str(config)])
    assert merge_config(flags) == {"image_size": (96, 128)}
    assert parse_size([96, 128]) == (96, 128) and parse_size(64) == (64, 64)


def test_schedules_keep_presets_and_get_integer_epochs():
    assert parse_schedule('{"0": "top:1", "2": "all"}') == {0: "top:1", 2: "all"}
    assert parse_schedule({"0": ["conv5"]}) == {0: ["conv5"]}
    for preset in ("all", "gradual", "gradual:2", "plateau"):
        assert parse_schedule(preset) == preset
    with pytest.raises(argparse.ArgumentTypeError, match="not valid JSON"):
        parse_schedule("{0: top}")
    with pytest.raises(argparse.ArgumentTypeError, match="strictly increasing"):
        parse_schedule({"2": "all", "1": "top:1"})


@pytest.mark.parametrize(
    ("flag", "hint"),
    [
        ("--learning-rat", " (did you mean --learning-rate?)"),
        # Close to no flag of train's but --help: no suggestion, not "--help?".
        ("--lr", ""),
    ],
)
def test_an_unknown_flag_is_named_with_the_right_one_if_any(flag, hint, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", "x", flag, "0.1"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"tltf train: error: unrecognized arguments: {flag} 0.1{hint}; "
        "see `tltf train --help`"
    )


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


def test_config_values_go_through_the_flags_parsers(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text(
        textwrap.dedent(
            """\
            schedule: {"0": top:1, "2": all}
            learning-rate: 0.01
            export: true
            overwrite: false
            """
        )
    )
    args = build_parser().parse_args(["train", "--config", str(config)])
    assert merge_config(args) == {
        "schedule": {0: "top:1", 2: "all"},
        "learning_rate": 0.01,
        "export": True,
    }
    args = build_parser().parse_args(["predict", "--config", str(config)])
    with pytest.raises(tltf.ConfigError, match="not flags of `tltf predict`"):
        merge_config(args)


def test_the_layout_names_in_help_come_from_runs(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert runs.DEFAULT_OUTPUT in out and runs.MODEL_FILE in out
