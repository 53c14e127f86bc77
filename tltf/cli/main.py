"""The ``tltf`` command line: its parser, and the entry point ``main``.

Subcommands: train, adapt, tune, evaluate, calibrate, export, predict,
list-backbones, demo.

A thin layer over the library. Every flag defaults to None and is dropped
before the library is called, so the library's defaults are the defaults.
A config file (YAML or JSON) holds the same settings as the flags, with the
flag names as keys (``epochs: 3``, ``backbone: keras:resnet50``); flags given
on the command line win over the file.

Bad input ends with a one-line error that says what to do and exit status 1;
``--debug`` shows the traceback instead. Arguments are parsed before
TensorFlow is imported (a typo fails at once), and TensorFlow's native
start-up lines are kept off the terminal unless ``--debug``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Sequence
from typing import Any

from tltf import runs
from tltf.cli.parsing import parse_size
from tltf.errors import TltfError

_EXAMPLES = {
    None: """
        examples:
          tltf demo              # offline: MiniLM fine-tuned on the shipped dataset
          tltf train --data flowers/ --backbone keras:mobilenet_v2 --epochs 5
          tltf train --csv reviews.csv --text-column review --label-column stars
          tltf adapt --data studio/ --target-data street/ --method dann
          tltf evaluate --model runs/tltf/model.keras --data flowers/
          tltf export --model runs/tltf/model.keras --output serving/flowers
          tltf predict --model serving/flowers rose.jpg tulip.png
          tltf list-backbones --modality image

        Run `tltf <command> --help` for the flags of a command.""",
    "train": """
        examples:
          # An image folder (one subfolder per class), 5 epochs, exported at the end:
          tltf train --data flowers/ --backbone keras:mobilenet_v2 --epochs 5 --export
          # A CSV/TSV with text and label columns, on the offline MiniLM encoder:
          tltf train --csv reviews.tsv --text-column review --label-column label
          # A TFDS dataset by name, unfreezing one more layer group per epoch:
          tltf train --tfds tf_flowers --schedule gradual --epochs 6
          # The same settings from a file (flags win over the file):
          tltf train --config run.yaml --epochs 2
          # No data: the offline demo (same as `tltf demo`):
          tltf train""",
    "adapt": """
        examples:
          # Labelled studio photos (one subfolder per class), unlabelled street
          # photos (flat, or in subfolders whose names are ignored):
          tltf adapt --data studio/ --target-data street/ --epochs 10
          # Scored on a few labelled street photos (same class subfolders):
          tltf adapt --data studio/ --target-data street/ --target-validation \\
              street_labelled/ --method coral --output runs/street""",
    "tune": """
        examples:
          tltf tune --data flowers/ --backbone keras:mobilenet_v2 --max-trials 4
          tltf tune --csv reviews.csv --output runs/search""",
    "evaluate": """
        examples:
          # The held-out split of the run (same validation_split and seed):
          tltf evaluate --model runs/tltf/model.keras --data flowers/
          # Every image, training ones included, replacing an earlier report:
          tltf evaluate --model runs/tltf --data flowers/ --split all --overwrite
          # A separate test file is scored whole:
          tltf evaluate --model runs/tltf/model.keras --csv test.csv --output eval/""",
    "export": """
        examples:
          tltf export --model runs/tltf/model.keras --output serving/flowers
          tltf export --model runs/tltf/model.keras --output serving/flowers --overwrite
          saved_model_cli show --dir serving/flowers --all  # see the signatures
          # int8 weights (Dense/EinsumDense/Embedding layers), checked against float:
          tltf export --model runs/tltf/model.keras --output serving/q --quantize int8
          # One LiteRT file (pixels or token ids in) with a JSON sidecar:
          tltf export --model runs/tltf/model.keras --format litert \\
              --output mobile/model.tflite --quantize int8""",
    "calibrate": """
        examples:
          # The threshold where 95% of the answers on the held-out split are right:
          tltf calibrate --model runs/tltf/model.keras --csv train.csv \\
              --target-precision 0.95
          # Out-of-scope examples (a text file, one per line; or an image folder):
          tltf calibrate --model runs/tltf/model.keras --csv val.csv --oos oos.txt""",
    "predict": """
        examples:
          tltf predict --model runs/tltf/model.keras rose.jpg tulip.png
          tltf predict --model serving/flowers rose.jpg          # a tltf export
          tltf predict --model runs/demo/model.keras "the match went to extra time" """,
    "list-backbones": """
        examples:
          tltf list-backbones
          tltf list-backbones --modality text""",
    "demo": """
        examples:
          tltf demo                       # writes to runs/tltf-demo
          tltf demo --output /tmp/demo --epochs 4""",
}

_HELP = {
    "train": "fine-tune a pretrained base on your data (no data: the offline demo)",
    "adapt": "train on labelled images, adapt to unlabelled ones of another domain",
    "tune": "search learning rates with KerasTuner",
    "evaluate": "write a metrics report and plots for a trained model",
    "calibrate": "fit a temperature and an 'unknown' threshold on held-out data",
    "export": "write a verified SavedModel (or LiteRT file) for serving",
    "predict": "classify image files or text with a model or an export",
    "list-backbones": "list the registered pretrained bases",
    "demo": "offline end-to-end run: MiniLM on the shipped dataset",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tltf`` and its subcommands."""
    parser = argparse.ArgumentParser(
        prog="tltf",
        description="Transfer learning for Keras 3: fine-tune, tune, evaluate, export.",
        epilog=textwrap.dedent(_EXAMPLES[None]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks on errors and TensorFlow's start-up logs",
    )
    common.add_argument(
        "--config", help="YAML or JSON file with the same settings as the flags"
    )
    for name, adder in _SUBCOMMANDS.items():
        p = sub.add_parser(
            name,
            parents=[common],
            help=_HELP[name],
            description=_HELP[name].capitalize() + ".",
            epilog=textwrap.dedent(_EXAMPLES[name]),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        adder(p)
    return parser


# --- flags shared by subcommands ---


def _data_flags(p: argparse.ArgumentParser, required: bool = False) -> None:
    g = p.add_argument_group("data (one of --data, --csv, --tfds)")
    g.add_argument("--data", help="image folder: <folder>/<class>/<images>")
    g.add_argument("--csv", help="CSV or TSV file with a text and a label column")
    g.add_argument("--tfds", help="TensorFlow Datasets name, e.g. tf_flowers")
    g.add_argument("--text-column", help="text column of --csv")
    g.add_argument("--label-column", help="label column of --csv")
    g.add_argument(
        "--image-size", type=parse_size, help="resize images to SIZE or HxW, e.g. 224"
    )
    g.add_argument("--batch-size", type=int, help="examples per batch")
    g.add_argument("--validation-split", type=float, help="fraction held out, e.g. 0.2")


def _model_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--backbone",
        help="pretrained base, e.g. keras:mobilenet_v2 or kerashub:all-minilm-l6-v2 "
        "(see `tltf list-backbones`)",
    )
    g.add_argument(
        "--weights",
        help="image base weights: imagenet, none (random) or a weights file",
    )
    g.add_argument("--sequence-length", type=int, help="tokens per text example")


def _output_flag(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--output", help=f"output folder for {what}")


def _add_train(p: argparse.ArgumentParser) -> None:
    _data_flags(p)
    _model_flags(p)
    g = p.add_argument_group("training")
    g.add_argument(
        "--epochs", type=int, help="epochs after the frozen stage (default 3)"
    )
    g.add_argument(
        "--schedule",
        help="how the base unfreezes after the frozen stage: all, gradual "
        "(one more layer group per epoch) or JSON {epoch: groups} counted from "
        'the first unfrozen epoch, e.g. \'{"0": "top:1", "2": "top:3", "4": "all"}\'',
    )
    g.add_argument(
        "--lora-rank",
        type=int,
        help="train LoRA adapters of this rank instead of the base's weights, "
        "e.g. 8 (the run folder gets adapter.safetensors)",
    )
    _rate_output_export(p, g, runs.DEFAULT_OUTPUT)


def _add_adapt(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data (image folders only)")
    g.add_argument("--data", help="labelled source images: <folder>/<class>/<images>")
    g.add_argument(
        "--target-data",
        help="unlabelled target images: a flat folder, or subfolders whose names "
        "are ignored",
    )
    g.add_argument(
        "--target-validation",
        help="labelled target images to score on, with the same class subfolders "
        "as --data (the report and val_* logs); else the source's held-out split",
    )
    g.add_argument(
        "--image-size", type=parse_size, help="resize images to SIZE or HxW, e.g. 224"
    )
    g.add_argument("--batch-size", type=int, help="examples per batch")
    g.add_argument(
        "--validation-split", type=float, help="fraction of --data held out, e.g. 0.2"
    )
    _model_flags(p)
    g = p.add_argument_group(
        "adaptation (the head gets a hidden layer of 256 units, which adapts "
        "with the output layer; the pretrained base stays frozen)"
    )
    g.add_argument(
        "--method",
        help="dann (adversarial, the default), coral (covariances) or mmd "
        "(kernel mean embeddings)",
    )
    g.add_argument("--epochs", type=int, help="passes over --data (default 10)")
    g.add_argument(
        "--adaptation-weight",
        type=float,
        help="largest weight of the adaptation loss (default 1.0), ramped up "
        "from 0 as in the DANN paper",
    )
    _rate_output_export(p, g, runs.ADAPT_OUTPUT)


def _rate_output_export(p: argparse.ArgumentParser, group: Any, output: str) -> None:
    """The flags a training command ends with: rate, output folder, export."""
    group.add_argument("--learning-rate", type=float, help="head learning rate")
    _output_flag(p, f"the model, report and export (default {output})")
    p.add_argument(
        "--export", action="store_const", const=True, help="also export a SavedModel"
    )


def _add_tune(p: argparse.ArgumentParser) -> None:
    _data_flags(p)
    _model_flags(p)
    p.add_argument("--max-trials", type=int, help="trials to run")
    p.add_argument("--epochs", type=int, help="epochs per trial")
    _output_flag(p, "the search (resumes when it exists)")


def _add_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .keras model written by tltf train")
    _data_flags(p)
    p.add_argument(
        "--split",
        choices=["validation", "train", "all"],
        help="what to score: the training run's held-out validation split "
        "(default for the data it was trained on), train, or all (default "
        "for other data)",
    )
    _output_flag(
        p,
        f"{runs.REPORT_FILE} and the plots (default: {runs.EVALUATION_DIR}/ next "
        f"to the model, or {runs.EVALUATION_DIR}-2/ ... when that holds a report)",
    )
    p.add_argument(
        "--overwrite",
        action="store_const",
        const=True,
        help="replace a report.json already in the output folder",
    )
    p.add_argument(
        "--oos",
        help="out-of-scope examples for a calibrated model (a text file, one "
        "per line, or an image folder): reports the share answered unknown",
    )


def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .keras model written by tltf train")
    _output_flag(p, "the SavedModel (must not exist unless --overwrite)")
    p.add_argument(
        "--overwrite", action="store_const", const=True, help="replace an export"
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_const",
        const=False,
        help="skip the reload check",
    )
    p.add_argument(
        "--format",
        choices=["saved_model", "litert"],
        help="saved_model (default: a folder) or litert (one .tflite file, "
        "with a .json sidecar)",
    )
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="export int8 weights, checked against the float model",
    )


def _add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .keras model written by tltf train (updated)")
    _data_flags(p)
    p.add_argument(
        "--split",
        choices=["validation", "train", "all"],
        help="what to calibrate on (default: as tltf evaluate picks it)",
    )
    g = p.add_argument_group("rule (one of --target-precision, --oos)")
    g.add_argument(
        "--target-precision",
        type=float,
        help="lowest threshold whose answers are right this often, e.g. 0.95",
    )
    g.add_argument(
        "--oos",
        help="out-of-scope examples: a text file (one per line) or an image folder",
    )
    g.add_argument(
        "--max-accuracy-drop",
        type=float,
        help="with --oos: in-scope accuracy the threshold may cost (default 0.01)",
    )


def _add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="a .keras model or a tltf export folder")
    p.add_argument(
        "inputs",
        nargs="*",
        help="image files (unreadable ones are skipped and listed), or texts "
        "for text models",
    )
    p.add_argument("--top-k", type=int, help="classes to show per input (default 1)")


def _add_list(p: argparse.ArgumentParser) -> None:
    p.add_argument("--modality", choices=["image", "text"], help="filter")


def _add_demo(p: argparse.ArgumentParser) -> None:
    _output_flag(p, f"the demo run (default {runs.DEMO_OUTPUT})")
    p.add_argument(
        "--epochs", type=int, help="epochs after the frozen stage (default 2)"
    )


_SUBCOMMANDS = {
    "train": _add_train,
    "adapt": _add_adapt,
    "tune": _add_tune,
    "evaluate": _add_evaluate,
    "calibrate": _add_calibrate,
    "export": _add_export,
    "predict": _add_predict,
    "list-backbones": _add_list,
    "demo": _add_demo,
}


# --- entry point ---


def main(argv: Sequence[str] | None = None) -> int:
    """Runs ``tltf`` with ``argv`` (default: ``sys.argv[1:]``).

    Returns:
        The exit status: 0 on success, 1 on bad input, 2 on bad usage.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    from tltf.cli import options as cli_options
    from tltf.cli.startup import import_commands

    try:
        options = cli_options.merge_config(args)
        return import_commands(args.debug).run(args.command, options)
    except TltfError as err:
        if args.debug:
            raise
        _fail(args.command, str(err))
    except KeyboardInterrupt:
        print("tltf: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - one line unless --debug.
        if args.debug:
            raise
        _fail(args.command, f"{type(err).__name__}: {err}")
    return 1


def _fail(command: str, message: str) -> None:
    line = " ".join(message.split())
    print(
        f"tltf {command}: error: {line} (--debug shows the traceback)", file=sys.stderr
    )


if __name__ == "__main__":
    sys.exit(main())
