"""The ``tltf`` subcommands: one row each, and the parser built from them.

A row says everything about a subcommand: its name, one line of help, its
examples, its flags (`tltf.cli.flags`), what is checked before TensorFlow
loads (`tltf.cli.checks`), and its handler. The handler is named as
``"module:function"`` and imported only when the subcommand runs, after the
arguments are checked: parsing ``tltf train --epochs -1`` imports no
TensorFlow, and the handler's module imports the library once, at its top.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from collections.abc import Callable, Mapping
from typing import Any

from tltf import runs
from tltf.cli import checks, flags


@dataclasses.dataclass(frozen=True)
class Subcommand:
    """One ``tltf`` subcommand.

    Attributes:
        name: What the user types, e.g. ``"train"``.
        help: One line for ``tltf --help``; the description of its own help.
        example: Example command lines (with comments) for its ``--help``;
            the first ``tltf ...`` line also appears in ``tltf --help``.
        flags: Adds its flags to its parser.
        check: Checks the merged options before TensorFlow loads.
        handler: ``"module:function"`` that runs it on the options and
            returns the exit status.
    """

    name: str
    help: str
    example: str
    flags: Callable[[argparse.ArgumentParser], None]
    check: Callable[[Mapping[str, Any]], None]
    handler: str

    def example_text(self) -> str:
        """The examples, without the indentation of the source."""
        return textwrap.dedent(self.example).strip("\n")

    def first_example(self) -> str:
        """The first example command line."""
        lines = self.example_text().splitlines()
        return next(line for line in lines if line.startswith("tltf "))


SUBCOMMANDS = (
    Subcommand(
        "train",
        "fine-tune a pretrained base on your data (no data: the offline demo)",
        """
        # An image folder (one subfolder per class), 5 epochs, exported at the end:
        tltf train --data flowers/ --backbone keras:mobilenet_v2 --epochs 5 --export
        # A CSV/TSV with text and label columns, on the offline MiniLM encoder:
        tltf train --csv reviews.tsv --text-column review --label-column label
        # A TFDS dataset by name, unfreezing one more layer group per epoch:
        tltf train --tfds tf_flowers --schedule gradual --epochs 6
        # The same settings from a file (flags win over the file):
        tltf train --config run.yaml --epochs 2
        # Replace the run in runs/tltf (kept until the new one is complete):
        tltf train --data flowers/ --overwrite
        # No data: the offline demo (same as `tltf demo`):
        tltf train""",
        flags.train,
        checks.train,
        "tltf.cli.training:train",
    ),
    Subcommand(
        "adapt",
        "train on labelled images, adapt to unlabelled ones of another domain",
        """
        # Labelled studio photos (one subfolder per class), unlabelled street
        # photos (flat, or in subfolders whose names are ignored):
        tltf adapt --data studio/ --target-data street/
        # Scored on a few labelled street photos (same class subfolders):
        tltf adapt --data studio/ --target-data street/ --target-validation \\
            street_labelled/ --method coral --output runs/street""",
        flags.adapt,
        checks.adapt,
        "tltf.cli.training:adapt",
    ),
    Subcommand(
        "tune",
        "search learning rates with KerasTuner",
        """
        tltf tune --data flowers/ --backbone keras:mobilenet_v2 --max-trials 4
        tltf tune --csv reviews.csv --output runs/search   # run again to resume""",
        flags.tune,
        checks.tune,
        "tltf.cli.training:tune",
    ),
    Subcommand(
        "evaluate",
        "write a metrics report and plots for a trained model",
        """
        # The held-out split of the run (same validation_split and seed):
        tltf evaluate --model runs/tltf/model.keras --data flowers/
        # Every image, training ones included, replacing the run's report:
        tltf evaluate --model runs/tltf --data flowers/ --split all --overwrite
        # A separate test file is scored whole:
        tltf evaluate --model runs/tltf/model.keras --csv test.csv --output eval/""",
        flags.evaluate,
        checks.evaluate,
        "tltf.cli.evaluating:evaluate",
    ),
    Subcommand(
        "calibrate",
        "fit a temperature and an 'unknown' threshold on held-out data",
        """
        # The threshold where 95% of the answers on the held-out split are right:
        tltf calibrate --model runs/tltf --csv train.csv --target-precision 0.95
        # Out-of-scope examples (a text file, one per line; or an image folder),
        # replacing the calibration made above:
        tltf calibrate --model runs/tltf --csv val.csv --oos oos.txt --overwrite""",
        flags.calibrate,
        checks.calibrate,
        "tltf.cli.calibrate:calibrate",
    ),
    Subcommand(
        "export",
        "write a verified SavedModel (or LiteRT file) for serving",
        """
        tltf export --model runs/tltf/model.keras --output serving/flowers
        tltf export --model runs/tltf --output serving/flowers --overwrite
        saved_model_cli show --dir serving/flowers --all  # see the signatures
        # int8 weights (Dense/EinsumDense/Embedding layers), checked against float:
        tltf export --model runs/tltf/model.keras --output serving/q --quantize int8
        # One LiteRT file (pixels or token ids in) with a JSON sidecar:
        tltf export --model runs/tltf/model.keras --format litert \\
            --output mobile/model.tflite --quantize int8""",
        flags.export,
        checks.export,
        "tltf.cli.exporting:export",
    ),
    Subcommand(
        "predict",
        "classify image files or texts with a model or an export",
        """
        tltf predict --model serving/flowers rose.jpg tulip.png   # an export
        tltf predict --model runs/tltf/model.keras rose.jpg
        tltf predict --model runs/tltf-demo "the match went to extra time" """,
        flags.predict,
        checks.predict,
        "tltf.cli.predict:predict",
    ),
    Subcommand(
        "list-backbones",
        "list the registered pretrained bases",
        """
        tltf list-backbones --modality image
        tltf list-backbones""",
        flags.list_backbones,
        checks.list_backbones,
        "tltf.cli.training:list_backbones",
    ),
    Subcommand(
        "demo",
        "offline end-to-end run: MiniLM fine-tuned on the shipped dataset",
        """
        tltf demo                       # writes to runs/tltf-demo
        tltf demo --overwrite           # replaces it
        tltf demo --output /tmp/demo --epochs 4""",
        flags.demo,
        checks.demo,
        "tltf.cli.training:demo",
    ),
)

BY_NAME = {command.name: command for command in SUBCOMMANDS}

_ABOUT = f"""
The run folder (tltf train, adapt, demo):
  {runs.MODEL_FILE:<14}the trained model: architecture and weights, no optimizer
  {"":<14}state (it loads ready to predict, evaluate, calibrate and
  {"":<14}export; compile it before training it further)
  {runs.RUN_FILE:<14}class names, options, training history, data
  {runs.EVALUATION_DIR + "/":<14}{runs.REPORT_FILE} and plots
  {runs.EXPORT_DIR + "/":<14}the verified SavedModel (with --export)

Overwriting: a run, report, calibration or export already at the output is
replaced only with --overwrite; without it tltf stops before any work. A run
is written beside its folder and swapped in when complete, so an interrupted
run leaves the previous one whole.

Exit status: 0 done; 1 the run failed (the message says why); 2 the command
line is wrong (checked before anything runs); 130 interrupted.
Run `tltf <command> --help` for the flags and examples of a command."""


def build_parsers() -> tuple[argparse.ArgumentParser, dict[str, Any]]:
    """The ``tltf`` parser and each subcommand's parser, by name."""
    examples = "\n".join(f"  {c.first_example()}" for c in SUBCOMMANDS)
    parser = flags.FlagParser(
        prog="tltf",
        description="Transfer learning for Keras 3: fine-tune, tune, evaluate, "
        "calibrate, export.",
        epilog=f"examples:\n{examples}\n{_ABOUT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", parser_class=flags.FlagParser
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        help="show tracebacks on errors and TensorFlow's start-up logs",
    )
    common.add_argument(
        "--config",
        metavar="FILE",
        help="YAML or JSON file with the same settings as the flags "
        "(keys are flag names); flags win over the file",
    )
    parsers = {}
    for command in SUBCOMMANDS:
        p = sub.add_parser(
            command.name,
            parents=[common],
            help=command.help,
            description=command.help[0].upper() + command.help[1:] + ".",
            epilog="examples:\n" + textwrap.indent(command.example_text(), "  "),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.flags(p)
        parsers[command.name] = p
    return parser, parsers


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``tltf`` and its subcommands."""
    return build_parsers()[0]
