"""Every snippet of README.md runs as written.

- The ```python blocks run in order, in one namespace per chain (`CHAINS`:
  a chain starts where the README loads its own data and builds its own
  model), each chain in a fresh process whose working folder holds the
  files they read (``flowers/``, ``photos/``, ``reviews.csv``, a tiny
  sentence encoder in ``encoder/``). Only what cannot run offline is
  changed, plus what would take minutes, by `SUBSTITUTIONS` (each with its
  reason: MiniLM becomes the tiny encoder, three calls are shortened); names
  that the README leaves to the reader (``train``, ``teacher``, ...) are
  given by `SETUP`.
- The ``>>>`` block runs as a doctest.
- Every ``tltf ...`` command line of the ```bash blocks parses with the
  command line's own parser.
"""

from __future__ import annotations

import dataclasses
import doctest
import io
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import tiny_sentence_encoder, write_image_folder

README = Path(__file__).resolve().parents[1] / "README.md"


@dataclasses.dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    language: str
    code: str
    line: int  # 1-based line of the opening fence
    section: str

    @property
    def id(self) -> str:
        slug = re.sub(r"[^a-z0-9]+", "-", self.section.lower()).strip("-")
        return f"line{self.line}-{slug or 'intro'}"


def readme_blocks(text: str | None = None) -> list[Block]:
    """The fenced code blocks of the README, in order."""
    text = README.read_text() if text is None else text
    blocks, section, fence = [], "", None
    lines = text.splitlines()
    for number, line in enumerate(lines, start=1):
        if fence is None and line.startswith("## "):
            section = line[3:].strip()
        elif fence is None and line.startswith("```"):
            fence = (line[3:].strip(), number, [])
        elif fence is not None and line.startswith("```"):
            blocks.append(Block(fence[0], "\n".join(fence[2]), fence[1], section))
            fence = None
        elif fence is not None:
            fence[2].append(line)
    return blocks


BLOCKS = readme_blocks()
PYTHON = [b for b in BLOCKS if b.language == "python" and ">>>" not in b.code]
DOCTESTS = [b for b in BLOCKS if b.language == "python" and ">>>" in b.code]
SHELL = [b for b in BLOCKS if b.language in ("bash", "sh", "shell", "console")]

#: The folder `write_fixtures` writes the tiny encoder to, and the backbone
#: name the substituted snippets give it.
ENCODER = "encoder"
ENCODER_NAME = f"kerashub:{ENCODER}"

#: (text in a snippet, what runs instead, why): what cannot run offline, and
#: what would take minutes (the MiniLM encoder, range test, search,
#: distillation).
SUBSTITUTIONS = [
    (
        'tltf.build_image_classifier("keras:resnet50", data.num_classes)',
        'tltf.build_image_classifier("keras:resnet50", data.num_classes, weights=None)',
        "ImageNet weights cannot be downloaded offline: random weights instead.",
    ),
    (
        'tltf.build_image_classifier("keras:mobilenet_v2", 3,',
        'tltf.build_image_classifier("keras:mobilenet_v2", 3, weights=None,',
        "ImageNet weights cannot be downloaded offline: random weights instead.",
    ),
    (
        '"kerashub:all-minilm-l6-v2"',
        f'"{ENCODER_NAME}"',
        "Time, not offline: a 2-layer BERT saved as a sentence-transformers "
        "folder (mean pooling by default, as MiniLM's), made by write_fixtures. "
        "The text chain runs on it in ~90 CPU s, on MiniLM in ~160 s; "
        "test_defaults runs MiniLM itself (its recipes through tltf train).",
    ),
    (
        'tltf.find_learning_rate(model, data.train, plot_path="lr_finder.png")',
        'tltf.find_learning_rate(model, data.train, plot_path="lr_finder.png", '
        "num_steps=20)",
        "Time, not offline: after fine_tune the whole MiniLM trains, and 200 steps "
        "take ~3.5 min on 2 CPU cores (test_defaults runs the range test).",
    ),
    (
        "data, max_trials=8,",
        "data, max_trials=2,",
        "Time, not offline: each trial builds and traces a text classifier "
        "(~5 s); two trials show the reuse of the base's features, as in "
        "test_defaults' tune_learning_rate row.",
    ),
    (
        "temperature=3.0, alpha=0.1, epochs=10)",
        "temperature=3.0, alpha=0.1, epochs=2)",
        "Time, not offline: ten epochs of two 224x224 MobileNets take ~40 s on 2 "
        "CPU cores; two run every part of the call (test_defaults runs distill).",
    ),
]

#: (text in a snippet, code run just before it, why). Names the README leaves
#: to the reader, bound to the closest thing the earlier snippets made.
SETUP = [
    (
        "model.fit(train, validation_data=val",
        "train, val = data.train, data.validation",
        "train and val are the reader's datasets: here the loaded data's splits.",
    ),
    (
        'tltf.evaluate(model, data, output_dir="runs/eval", history=history)',
        "history = model.history",
        "history is the reader's record of training: here the History of the "
        "model.fit just before (Keras keeps it as model.history).",
    ),
    (
        "tltf.distill(teacher, student",
        "import numpy as np\n"
        "teacher, n = model, data.num_classes\n"
        "extra_images = np.random.default_rng(0).integers("
        "0, 256, (4, 224, 224, 3)).astype('uint8')",
        "teacher, n and extra_images are the reader's: here the image model "
        "trained just before, its classes, and four unlabeled images.",
    ),
]

#: (text in a snippet, why): the snippets that start a chain. From each, the
#: README loads its own data and builds its own model, so the snippets up to
#: the next start run in a process of their own, and the chains spread over
#: pytest-xdist's workers. The first snippet starts the first chain. A
#: snippet that used a name made in an earlier chain fails with NameError.
CHAIN_STARTS = [
    (
        'data = tltf.data.text_csv("reviews.csv"',
        "The text classifiers: the reviews and the MiniLM model.",
    ),
    (
        'strategy = tltf.get_strategy("auto")',
        "Distribution, export, compact serving, distillation: the photos and "
        "a MobileNetV2.",
    ),
    (
        "model = tltf.adapt_domain(",
        "Domain adaptation: the reviews, the comments and a MiniLM model.",
    ),
]


def chains(blocks: list[Block]) -> list[list[Block]]:
    """``blocks`` cut before every snippet that `CHAIN_STARTS` names."""
    cut: list[list[Block]] = []
    for block in blocks:
        starts = any(marker in block.code for marker, _ in CHAIN_STARTS)
        if starts or not cut:
            cut.append([])
        cut[-1].append(block)
    return cut


REVIEWS = [
    ("a gripping, well acted film", "positive"),
    ("great acting and a fine story", "positive"),
    ("i loved every minute of it", "positive"),
    ("wonderful, warm and funny", "positive"),
    ("a moving film with a great cast", "positive"),
    ("the best film of the year", "positive"),
    ("good fun for the whole family", "positive"),
    ("a fine, clever script", "positive"),
    ("a dull film with bad acting", "negative"),
    ("boring from start to end", "negative"),
    ("i hated every minute of it", "negative"),
    ("an awful, empty story", "negative"),
    ("the worst film of the year", "negative"),
    ("a weak cast and a silly plot", "negative"),
    ("no fun at all", "negative"),
    ("a long, tired and dull film", "negative"),
]


def substituted(code: str, entries: list[tuple[str, str, str]] = SUBSTITUTIONS) -> str:
    """``code`` with each of ``entries`` replaced, in order."""
    for old, new, _ in entries:
        code = code.replace(old, new)
    return code


def snippet_source(block: Block) -> str:
    """The code that runs for ``block``: setup, then the substituted snippet."""
    code = substituted(block.code)
    setup = [prelude for marker, prelude, _ in SETUP if marker in block.code]
    return "\n".join([*setup, code])


def write_fixtures(folder: Path, encoder: bool = True) -> None:
    """The files the snippets read, in their working folder."""
    write_image_folder(folder / "flowers", {"daisy": 5, "rose": 5, "tulip": 5})
    write_image_folder(folder / "photos", {"cat": 4, "dog": 4, "owl": 4}, seed=1)
    rows = "".join(f'"{text}",{label}\n' for text, label in REVIEWS)
    (folder / "reviews.csv").write_text("review,sentiment\n" + rows)
    if encoder:  # Only the chains that build a text model read it.
        words = [text.replace(",", "") for text, _ in REVIEWS]
        words += [block.code for block in PYTHON]
        # The builder's default sequence_length (128): as many positions.
        tiny_sentence_encoder(folder / ENCODER, words, max_sequence_length=128)


RUNNER = r"""
import json, sys, time, traceback

snippets = json.load(open(sys.argv[1]))
namespace = {"__name__": "__main__"}
for snippet in snippets:
    start = time.time()
    try:
        exec(compile(snippet["code"], snippet["name"], "exec"), namespace)
        result = {"ok": True}
    except BaseException as err:
        lines = str(err).strip().splitlines() or [""]
        result = {
            "ok": False,
            "error": f"{type(err).__name__}: {lines[0]}",
            "traceback": traceback.format_exc()[-3000:],
        }
    result.update(id=snippet["id"], seconds=round(time.time() - start, 1))
    print("RESULT" + json.dumps(result), flush=True)
"""


#: What every chain after the first runs first: the README's ``import tltf``
#: (the first line of its first snippet), which a reader has already run.
CHAIN_PRELUDE = "import tltf"


def run_chain(chain: list[Block], folder: Path) -> tuple[dict[str, dict], str]:
    """Runs one chain's snippets in order in a fresh process in ``folder``.

    Returns the results by snippet id, and the end of the process's stderr.
    """
    snippets = [
        {"id": b.id, "name": f"README.md:{b.line}", "code": snippet_source(b)}
        for b in chain
    ]
    write_fixtures(folder, encoder=any(ENCODER_NAME in s["code"] for s in snippets))
    if chain[0] is not PYTHON[0]:
        snippets[0]["code"] = f"{CHAIN_PRELUDE}\n{snippets[0]['code']}"
    (folder / "snippets.json").write_text(json.dumps(snippets))
    (folder / "run_snippets.py").write_text(RUNNER)
    done = subprocess.run(
        [sys.executable, "run_snippets.py", "snippets.json"],
        capture_output=True,
        text=True,
        cwd=folder,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=1500,
    )
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("RESULT"):
            result = json.loads(line[len("RESULT") :])
            results[result["id"]] = result
    for result in results.values():  # Shown with -s, and on failures.
        print(f"README {result['id']}: {result['seconds']} s, ok={result['ok']}")
    return results, done.stderr[-3000:]


# --- the Python snippets ---


def test_readme_has_the_snippets_this_test_expects():
    assert len(PYTHON) >= 5 and DOCTESTS and SHELL and CLI_LINES
    assert PYTHON[0].code.startswith(CHAIN_PRELUDE + "\n")
    for block in PYTHON:
        compile(snippet_source(block), f"README.md:{block.line}", "exec")


@pytest.mark.parametrize(("old", "new", "why"), SUBSTITUTIONS)
def test_each_substitution_still_matches_a_snippet(old, new, why):
    """A stale entry would hide a README change: keep the table exact.

    The entries apply in order, so each must match the snippets as the
    entries before it left them.
    """
    earlier = SUBSTITUTIONS[: SUBSTITUTIONS.index((old, new, why))]
    assert any(old in substituted(b.code, earlier) for b in PYTHON), (old, why)


@pytest.mark.parametrize(("marker", "prelude", "why"), SETUP)
def test_each_setup_still_matches_a_snippet(marker, prelude, why):
    assert any(marker in block.code for block in PYTHON), (marker, why)


@pytest.mark.parametrize(("marker", "why"), CHAIN_STARTS)
def test_each_chain_start_matches_one_snippet(marker, why):
    assert sum(marker in block.code for block in PYTHON) == 1, (marker, why)


CHAINS = chains(PYTHON)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.parametrize("chain", CHAINS, ids=[c[0].id for c in CHAINS])
def test_python_snippets_run(chain, tmp_path):
    """Slow: ResNet50 and MobileNets at 224x224 and MiniLM, minutes in all."""
    results, stderr = run_chain(chain, tmp_path)
    for block in chain:
        result = results.get(block.id)
        assert result is not None, (
            f"README.md line {block.line}: the snippet process stopped before "
            f"this snippet:\n{stderr}"
        )
        assert result["ok"], (
            f"README.md line {block.line}: {result['error']}\n{result['traceback']}"
        )


@pytest.mark.parametrize("block", DOCTESTS, ids=[b.id for b in DOCTESTS])
def test_doctest_block(block):
    import tltf

    test = doctest.DocTestParser().get_doctest(
        block.code, {"tltf": tltf}, block.id, str(README), block.line
    )
    out = io.StringIO()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    runner.run(test, out=out.write)
    assert runner.failures == 0, out.getvalue()


# --- the command lines ---


def cli_lines(blocks: list[Block]) -> list[tuple[str, str]]:
    """``(block id, command)`` for every ``tltf ...`` command in shell blocks."""
    found = []
    for block in blocks:
        for line in block.code.splitlines():
            for part in line.split("&&"):
                words = shlex.split(part, comments=True)
                if words and words[0] == "tltf":
                    found.append((block.id, shlex.join(words)))
    return found


CLI_LINES = cli_lines(SHELL)


@pytest.mark.parametrize(
    "command", [c for _, c in CLI_LINES], ids=[f"{i}-{c}" for i, c in CLI_LINES]
)
def test_cli_line_parses(command, capsys):
    from tltf.cli import build_parser

    try:
        args = build_parser().parse_args(shlex.split(command)[1:])
    except SystemExit:
        pytest.fail(f"{command!r} does not parse: {capsys.readouterr().err.strip()}")
    assert args.command == shlex.split(command)[1]
