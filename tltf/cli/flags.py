"""The flags of each ``tltf`` subcommand, and the groups they share.

Every flag defaults to None and is dropped before the library is called, so
the library's defaults are the defaults. Values are parsed and range-checked
here (`tltf.cli.parsing`), while the arguments are parsed: a flag given a
negative count or a word for a number fails at once, naming the flag. Flags
that work together (a data source and its columns, an output and
``--overwrite``) are checked by `tltf.cli.checks`.
"""

from __future__ import annotations

import argparse
import difflib
from typing import Any, NoReturn

from tltf import runs
from tltf.cli.parsing import number, parse_schedule, parse_size, whole

#: What ``--overwrite`` does, the same for every command that writes.
OVERWRITE_HELP = (
    "replace what --output already holds (the run, report, calibration or "
    "export); without it tltf stops before any work and names the path"
)


class FlagParser(argparse.ArgumentParser):
    """An argument parser that keeps its flags by name, with one-line errors.

    ``actions`` maps each flag's setting name (``epochs``) to its argparse
    action, whose type and choices check config-file values too
    (`tltf.cli.config`). Errors are one line, exit status 2.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.actions: dict[str, argparse.Action] = {}
        # "--epoch" is not "--epochs": a flag is spelled out, as in config files.
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **_with_metavar(kwargs))
        self.actions[action.dest] = action
        return action

    def flag_group(self, title: str) -> FlagGroup:
        """A titled group of flags in the help."""
        return FlagGroup(self, self.add_argument_group(title))

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._refuse_repeats(args)
        return super().parse_known_args(args, namespace)

    def _refuse_repeats(self, args: Any) -> None:
        """A flag given twice is an error, not "the last one wins" in silence."""
        if args is None:
            return
        known = {o for a in self.actions.values() for o in a.option_strings}
        seen: set[str] = set()
        for word in args:
            if word == "--":
                return
            name = str(word).split("=", 1)[0]
            if name in seen:
                self.error(f"{name} is given twice; pass it once")
            if name in known:
                seen.add(name)

    def error(self, message: str) -> NoReturn:
        line = " ".join(message.split()) + self._suggestion(message)
        self.exit(2, f"{self.prog}: error: {line}; see `{self.prog} --help`\n")

    def _suggestion(self, message: str) -> str:
        """``" (did you mean --epochs?)"`` for a misspelt flag."""
        if not message.startswith("unrecognized arguments:"):
            return ""
        known = [
            o
            for a in self.actions.values()
            for o in a.option_strings
            if o not in ("-h", "--help")  # "--lr" is not a misspelt --help
        ]
        for word in message.split(":", 1)[1].split():
            close = difflib.get_close_matches(word.split("=")[0], known, n=1)
            if close:
                return f" (did you mean {close[0]}?)"
        return ""


class FlagGroup:
    """A titled group of flags in the help, recording them in its parser."""

    def __init__(self, parser: FlagParser, group: Any) -> None:
        self.parser, self.group = parser, group

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = self.group.add_argument(*args, **_with_metavar(kwargs))
        self.parser.actions[action.dest] = action
        return action


def _with_metavar(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The value's name in the help from its parser (``--epochs N``)."""
    metavar = getattr(kwargs.get("type"), "metavar", None)
    if metavar and "metavar" not in kwargs:
        return {**kwargs, "metavar": metavar}
    return kwargs


Parser = FlagParser


# --- groups shared by subcommands ---


def data_flags(p: Parser, *, text: bool = True, tfds: bool = True) -> None:
    """The data source and how it is read: image folder, CSV file, TFDS name.

    Args:
        p: The subcommand's parser.
        text: Offer ``--csv`` and its columns (not for ``tltf adapt``).
        tfds: Offer ``--tfds``.
    """
    sources = ["--data"] + ["--csv"] * text + ["--tfds"] * tfds
    title = f"data (one of {', '.join(sources)})" if len(sources) > 1 else "data"
    g = p.flag_group(title)
    g.add_argument(
        "--data", metavar="FOLDER", help="image folder: <folder>/<class>/<images>"
    )
    if text:
        g.add_argument(
            "--csv",
            metavar="FILE",
            help="CSV or TSV file with a text and a label column",
        )
        g.add_argument(
            "--text-column", metavar="NAME", help="text column of --csv (default: text)"
        )
        g.add_argument(
            "--label-column",
            metavar="NAME",
            help="label column of --csv (default: label)",
        )
    if tfds:
        g.add_argument(
            "--tfds", metavar="NAME", help="TensorFlow Datasets name, e.g. tf_flowers"
        )
    image_data_flags(g)


def image_data_flags(g: FlagGroup) -> None:
    """Image size, batch size and the held-out fraction."""
    g.add_argument(
        "--image-size",
        type=parse_size,
        metavar="SIZE",
        help="resize images to SIZE or HEIGHTxWIDTH pixels, e.g. 224 or 160x224 "
        "(default: 224)",
    )
    g.add_argument(
        "--batch-size",
        type=whole(1, 32),
        metavar="N",
        help="examples per batch (default 32)",
    )
    fraction_flag(
        g,
        "--validation-split",
        0.2,
        "fraction held out for validation, from 0 to below 1 (default 0.2)",
    )


def fraction_flag(g: FlagGroup, name: str, default: float, help: str) -> None:
    """A flag that takes a fraction from 0 to below 1 (``default`` when absent)."""
    below_one = number(0, default, high=1, high_open=True)
    g.add_argument(name, type=below_one, metavar="FRACTION", help=help)


def model_flags(p: Parser, *, text: bool = True) -> None:
    """The pretrained base, its weights, and the text length."""
    g = p.flag_group("model")
    g.add_argument(
        "--backbone",
        metavar="NAME",
        help="pretrained base, e.g. keras:mobilenet_v2 (images) or "
        "kerashub:all-minilm-l6-v2 (text: the offline MiniLM), or a .keras "
        "file (see `tltf list-backbones`)",
    )
    g.add_argument(
        "--weights",
        help="image base weights: imagenet (default), none (random) or a weights file",
    )
    if text:
        g.add_argument(
            "--sequence-length",
            type=whole(1, 128),
            help="tokens per text example (default 128)",
        )


def model_flag(p: Parser, what: str) -> None:
    p.add_argument("--model", metavar="PATH", help=what)


def output_flags(p: Parser, what: str, *, overwrite: bool = True) -> None:
    p.add_argument("--output", metavar="PATH", help=what)
    if overwrite:
        p.add_argument(
            "--overwrite", action="store_const", const=True, help=OVERWRITE_HELP
        )


def training_tail(g: FlagGroup, p: Parser, default_output: str) -> None:
    """The flags a training command ends with: rate, run folder, export."""
    g.add_argument(
        "--learning-rate",
        type=number(0, 1e-3, low_open=True),
        metavar="RATE",
        help="the head's learning rate, more than 0 (default: the builder's, 1e-3)",
    )
    output_flags(
        p,
        f"run folder (default {default_output}): {runs.MODEL_FILE}, "
        f"{runs.RUN_FILE}, {runs.EVALUATION_DIR}/, {runs.EXPORT_DIR}/",
    )
    p.add_argument(
        "--export",
        action="store_const",
        const=True,
        help=f"also export a verified SavedModel to <run>/{runs.EXPORT_DIR}/",
    )


# --- the subcommands ---


def train(p: Parser) -> None:
    data_flags(p)
    model_flags(p)
    g = p.flag_group("training")
    g.add_argument(
        "--epochs",
        type=whole(0, 3),
        help="epochs after the frozen stage (default 3; 0: the head only)",
    )
    g.add_argument(
        "--schedule",
        type=parse_schedule,
        help="how the base unfreezes after the frozen stage: all (default), "
        "gradual (one more layer group per epoch), gradual:N, plateau, or JSON "
        "{epoch: groups} counted from the first unfrozen epoch, e.g. "
        '\'{"0": "top:1", "2": "top:3", "4": "all"}\'',
    )
    g.add_argument(
        "--lora-rank",
        type=whole(1, 8),
        help="train LoRA adapters of this rank instead of the base's weights, "
        f"e.g. 8 (the run folder gets {runs.ADAPTER_FILE})",
    )
    g.add_argument(
        "--contrastive-epochs",
        type=whole(0, 4),
        help="text data: passes of a supervised contrastive stage that tunes the "
        "encoder before the head trains (default: 4 with at most 16 examples "
        "per class, else 1; 0 turns it off)",
    )
    training_tail(g, p, runs.DEFAULT_OUTPUT)


def adapt(p: Parser) -> None:
    g = p.flag_group("data (image folders only)")
    g.add_argument(
        "--data",
        metavar="FOLDER",
        help="labelled source images: <folder>/<class>/<images>",
    )
    g.add_argument(
        "--target-data",
        metavar="FOLDER",
        help="unlabelled target images: a flat folder, or subfolders whose names "
        "are ignored",
    )
    g.add_argument(
        "--target-validation",
        metavar="FOLDER",
        help="labelled target images to score on, with the same class subfolders "
        "as --data (the report and val_* logs); else the source's held-out split",
    )
    image_data_flags(g)
    model_flags(p, text=False)
    g = p.flag_group(
        "adaptation (the head gets a hidden layer of 256 units, which adapts "
        "with the output layer; the pretrained base stays frozen)"
    )
    g.add_argument(
        "--method",
        choices=["auto", "mcc", "dann", "coral", "mmd"],
        help="auto (the default: mcc for three or more classes, mmd with a "
        "round of self-training on the target images it labels with confidence "
        "for two), mcc (minimum class confusion on the target predictions), "
        "dann (adversarial), coral (covariances) or mmd (kernel mean "
        "embeddings); the run also trains on the source alone and keeps that "
        "model if the adapted one's target predictions are less balanced",
    )
    g.add_argument(
        "--epochs", type=whole(1, 10), help="passes over --data (default 10)"
    )
    g.add_argument(
        "--adaptation-weight",
        type=number(0, 1.0),
        metavar="WEIGHT",
        help="weight of the adaptation loss, at least 0 (default 1.0; 0 trains "
        "on the source alone); dann, coral and mmd ramp it up from 0",
    )
    training_tail(g, p, runs.ADAPT_OUTPUT)


def tune(p: Parser) -> None:
    data_flags(p)
    model_flags(p)
    g = p.flag_group("search (KerasTuner)")
    g.add_argument(
        "--max-trials", type=whole(1, 4), help="trials to run, at least 1 (default 10)"
    )
    g.add_argument(
        "--epochs", type=whole(1, 2), help="epochs per trial, at least 1 (default 3)"
    )
    output_flags(
        p,
        f"search folder (default {runs.TUNE_OUTPUT}); a folder that holds a "
        "search resumes it",
        overwrite=False,
    )


def evaluate(p: Parser) -> None:
    model_flag(p, f"a {runs.MODEL_FILE} (or its run folder) written by tltf train")
    data_flags(p)
    p.add_argument(
        "--split",
        choices=["validation", "train", "all"],
        help="what to score: the training run's held-out validation split "
        "(default for the data it was trained on), train, or all (default "
        "for other data)",
    )
    output_flags(
        p,
        f"folder for {runs.REPORT_FILE} and the plots (default: "
        f"{runs.EVALUATION_DIR}/ in the run folder, or {runs.EVALUATION_DIR}-2/ "
        "... when it holds a report and --overwrite is not given)",
    )
    p.add_argument(
        "--oos",
        metavar="PATH",
        help="out-of-scope examples for a calibrated model (a text file, one "
        "per line, or an image folder): reports the share answered unknown",
    )


def calibrate(p: Parser) -> None:
    model_flag(
        p,
        f"a {runs.MODEL_FILE} (or its run folder) written by tltf train; it is "
        "updated, and calibration.json written beside it",
    )
    data_flags(p)
    p.add_argument(
        "--split",
        choices=["validation", "train", "all"],
        help="what to calibrate on (default: as tltf evaluate picks it)",
    )
    g = p.flag_group("rule (one of --target-precision, --oos)")
    g.add_argument(
        "--target-precision",
        type=number(0, 0.95, low_open=True, high=1),
        metavar="FRACTION",
        help="lowest threshold whose answers are right this often, e.g. 0.95",
    )
    g.add_argument(
        "--oos",
        metavar="PATH",
        help="out-of-scope examples: a text file (one per line) or an image folder",
    )
    fraction_flag(
        g,
        "--max-accuracy-drop",
        0.01,
        "with --oos: in-scope accuracy the threshold may cost (default 0.01)",
    )
    p.add_argument("--overwrite", action="store_const", const=True, help=OVERWRITE_HELP)


def export(p: Parser) -> None:
    model_flag(p, f"a {runs.MODEL_FILE} (or its run folder) written by tltf train")
    output_flags(
        p,
        "the SavedModel folder to create, or the .tflite file with --format litert",
    )
    p.add_argument(
        "--no-verify",
        dest="verify",
        action="store_const",
        const=False,
        help="skip the check that reloads the export and compares it",
    )
    p.add_argument(
        "--format",
        choices=["saved_model", "litert"],
        help="saved_model (default: a SavedModel folder) or litert (one LiteRT "
        ".tflite file, with a .json sidecar)",
    )
    p.add_argument(
        "--quantize",
        choices=["int8"],
        help="export int8 weights, checked against the float model",
    )


def predict(p: Parser) -> None:
    model_flag(p, f"a {runs.MODEL_FILE}, its run folder, or a tltf export folder")
    p.add_argument(
        "inputs",
        nargs="*",
        help="image files for image models (unreadable ones are skipped and "
        "listed); texts in quotes for text models (a file path is refused)",
    )
    p.add_argument(
        "--top-k", type=whole(1, 3), help="classes to show per input (default 1)"
    )


def list_backbones(p: Parser) -> None:
    p.add_argument("--modality", choices=["image", "text"], help="only these bases")


def demo(p: Parser) -> None:
    output_flags(p, f"run folder (default {runs.DEMO_OUTPUT})")
    p.add_argument(
        "--epochs",
        type=whole(1, 2),
        help="epochs after the frozen stage, at least 1 (default 2)",
    )
