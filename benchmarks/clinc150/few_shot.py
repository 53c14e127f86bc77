"""CLINC150 few-shot: `tltf.fine_tune` at its defaults against the frozen probe.

Usage (from the repository root)::

    python -m benchmarks.clinc150.few_shot --threads 1   # about an hour
    python -m benchmarks.clinc150.few_shot --quick       # smoke run: 10 intents

At 10 and 5 texts per intent (three draws each, `data.few_shot`), on the
150 in-scope intents, the offline all-MiniLM-L6-v2 at 32 tokens:

- the probe: frozen mean-pooled embeddings and scikit-learn's
  ``LogisticRegression`` (the MTEB protocol, as (a) of `run.py`);
- ``tltf.fine_tune(model, (texts, labels), epochs=2)`` at its defaults (with
  few texts per intent, the contrastive stage, then the head on the tuned
  features, then 2 unfrozen epochs): test accuracy, the call's wall time,
  and out-of-scope recall after `tltf.calibrate_rejection` on the validation
  split (``val`` and ``oos_val``), scored on ``oos_test``.

Nothing is chosen on the test split: the defaults come from the validation
trials the report lists (the record's ``trials``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

import tltf  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.clinc150.data import (  # noqa: E402
    Clinc,
    Split,
    few_shot,
    load_clinc,
    out_of_scope,
)
from benchmarks.clinc150.run import (  # noqa: E402
    BACKBONE,
    DEFAULT_DATA,
    LIBRARIES,
    Embedder,
    Settings,
    scores,
)
from tltf.backbones.kerashub import minilm_folder  # noqa: E402
from tltf.files import write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
TRIALS = HERE / "few_shot_trials.json"  # the validation trials behind the defaults


@dataclasses.dataclass
class FewShot:
    """What one run measures."""

    shots: tuple[int, ...] = (10, 5)
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 2  # the unfrozen epochs of `run.py`'s few-shot (d)
    sequence_length: int = 32
    batch_size: int = 32
    intents: int | None = None
    quick: bool = False


def probe(embedder: Embedder, train: Split, test: Split, test_x: np.ndarray) -> dict:
    """Frozen features and LogisticRegression: test scores and seconds."""
    start = time.perf_counter()
    features = embedder(train.texts)
    fitted = LogisticRegression(max_iter=1000).fit(features, train.labels)
    seconds = time.perf_counter() - start
    accuracy, f1 = scores(test.labels, fitted.predict(test_x))
    return {"accuracy": accuracy, "macro_f1": f1, "seconds": seconds}


def defaults(
    data: Clinc, train: Split, oos: dict[str, list[str]], s: FewShot
) -> dict[str, Any]:
    """`fine_tune` at its defaults, timed; test scores and rejection."""
    model = tltf.build_text_classifier(
        BACKBONE, len(data.names), sequence_length=s.sequence_length
    )
    start = time.perf_counter()
    history = tltf.fine_tune(
        model, (train.texts, train.labels), epochs=s.epochs, verbose=0
    )
    seconds = time.perf_counter() - start
    calibration = tltf.calibrate_rejection(
        model, (data.val.texts, data.val.labels), oos_data=oos["oos_val"]
    )
    report = tltf.evaluate(
        model, (data.test.texts, data.test.labels), oos_data=oos["oos_test"]
    )
    predicted = tltf.predict_classes(model, data.test.texts).probabilities.argmax(-1)
    accuracy, f1 = scores(data.test.labels, predicted)
    return {
        "accuracy": accuracy,
        "macro_f1": f1,
        "seconds": seconds,
        "contrastive_loss": history.params.get("contrastive_loss"),
        "frozen_epochs": int(sum(1 for x in history.history["stage"] if x == 0)),
        "threshold": calibration.threshold,
        "test_out_of_scope_recall": report.rejection["out_of_scope_recall"] * 100,
        "test_accuracy_with_rejection": report.accuracy * 100,
    }


def run_all(data: Clinc, oos: dict, s: FewShot, progress: Path) -> dict[str, Any]:
    """Every draw of every shot count: the probe, then the defaults."""
    embedder = Embedder(str(minilm_folder()), Settings(s.sequence_length))
    test_x = embedder(data.test.texts)
    results: dict[str, Any] = {}
    for shots in s.shots:
        rows = results.setdefault(str(shots), {"probe": [], "defaults": []})
        for seed in s.seeds:
            train = few_shot(data.train, shots, seed)
            arms = {
                "probe": functools.partial(probe, embedder, train, data.test, test_x),
                "defaults": functools.partial(defaults, data, train, oos, s),
            }
            for arm, run in arms.items():
                row = common.run_isolated(seed, run, lambda e: {"error": e})
                rows[arm].append(row)
                stamp = time.strftime("%H:%M:%S")
                print(
                    f"[{stamp}] {shots}-shot draw {seed} {arm}: {json.dumps(row)}",
                    flush=True,
                )
                write_text(progress, json.dumps(results))
    return results


def main(argv: list[str] | None = None) -> None:
    """Runs the arms, then writes the record and the report and prints it."""
    parser = common.parser(__doc__, quick="smoke run: 10 intents, one draw")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data_full.json")
    args = parser.parse_args(argv)
    threads = common.set_threads(args.threads)
    s = FewShot(seeds=(0,), intents=10, quick=True) if args.quick else FewShot()
    output = common.output_path(args.output, HERE, "RESULTS-few-shot.md", args.quick)
    started = time.time()
    info = common.machine(started, libraries=LIBRARIES)
    info["TensorFlow threads"] = threads
    data = load_clinc(Path(args.data), s.intents)
    oos = out_of_scope(Path(args.data))
    if args.quick:
        oos = {key: texts[:50] for key, texts in oos.items()}
    progress = Path(tempfile.gettempdir()) / "clinc150-few-shot-progress.json"
    results = run_all(data, oos, s, progress)
    results["trials"] = json.loads(TRIALS.read_text())
    common.finish(info, started)
    command = "python -m benchmarks.clinc150.few_shot" + (
        " --quick" if args.quick else ""
    )
    config = {**dataclasses.asdict(s), "backbone": BACKBONE}
    record = common.new_record(
        __package__ + ".few_shot_report", command, config, results, info
    )
    common.save_run(output, record)


if __name__ == "__main__":
    main()
