"""CLINC150 intent classification: tltf's recipes against hand-written baselines.

Usage (from the repository root)::

    python -m benchmarks.clinc150.run            # the full run (about an hour, 2 cores)
    python -m benchmarks.clinc150.run --quick    # smoke run: 10 intents, 1 epoch

One process, one encoder (the offline all-MiniLM-L6-v2, ``kerashub:all-minilm-l6-v2``),
one sequence length, the 150 in-scope intents of CLINC150 (Larson et al.,
EMNLP 2019). Five ways to train a classifier, each on the full training
data and on 10 examples per intent (mean of three draws):

- (a) the probe users write by hand: frozen mean-pooled embeddings and
  scikit-learn's ``LogisticRegression`` (the MTEB protocol);
- (b) plain KerasHub: ``BertTextClassifier.from_preset`` fine-tuned with its
  own defaults;
- (c) `tltf.fit_frozen_head`, (d) `tltf.fine_tune`, (e) `tltf.tune_learning_rate`
  and its best model, all with tltf's defaults.

An arm that fails is reported as failing; the others still run. The record
(``RESULTS.json``) and the report (``RESULTS.md``, `report.py`) are written
once, at the end. Not part of CI: it needs the dataset at
``../shared/datasets/clinc150`` (or ``--data``) and about an hour.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import f1_score  # noqa: E402

import tltf  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.clinc150.data import (  # noqa: E402
    Clinc,
    Split,
    few_shot,
    load_clinc,
    token_lengths,
)
from tltf.backbones.kerashub import minilm_folder  # noqa: E402
from tltf.files import write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = common.DATASETS / "clinc150" / "data_full.json"
BACKBONE = "kerashub:all-minilm-l6-v2"
LIBRARIES = {"keras-hub": "keras_hub", "scikit-learn": "sklearn"}  # versions listed


@dataclasses.dataclass
class Settings:
    """What one run measures; `quick` shrinks everything for a smoke run."""

    sequence_length: int = 32
    batch_size: int = 32
    shots: int = 10
    seeds: tuple[int, ...] = (0, 1, 2)
    epochs: int = 3  # fine-tuning epochs of (b) and (d), full data (BERT's 2-4)
    few_shot_epochs: int = 2  # the same at 10 examples per intent
    intents: int | None = None  # None: all 150
    train_per_intent: int | None = None  # None: all 100
    eval_per_intent: int | None = None  # None: all (val 20, test 30)
    arms: str = "abcde"
    quick: bool = False

    @classmethod
    def for_quick(cls, arms: str) -> Settings:
        """Ten intents, 30 training texts each, one draw of 5, one epoch."""
        return cls(
            shots=5,
            seeds=(0,),
            epochs=1,
            few_shot_epochs=1,
            intents=10,
            train_per_intent=30,
            eval_per_intent=10,
            arms=arms,
            quick=True,
        )


# --- measuring ---


class EpochTimer(keras.callbacks.Callback):
    """Wall seconds of every epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self._start)


@dataclasses.dataclass
class Outcome:
    """One arm on one training set: test scores, wall time and extra figures."""

    accuracy: float | None = None
    macro_f1: float | None = None
    seconds: float | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


def scores(labels: np.ndarray, predicted: np.ndarray) -> tuple[float, float]:
    """In-scope accuracy and macro-F1, in percent."""
    accuracy = float(np.mean(predicted == labels)) * 100
    return accuracy, float(f1_score(labels, predicted, average="macro")) * 100


class Bench:
    """The data, settings and shared pieces every arm uses."""

    def __init__(self, data: Clinc, settings: Settings, workdir: Path) -> None:
        self.data = data
        self.settings = settings
        self.workdir = workdir
        self.folder = str(minilm_folder())
        self.embedder = Embedder(self.folder, settings)
        self._test_features: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        return len(self.data.names)

    def test_features(self) -> np.ndarray:
        """(a)'s test embeddings, computed once (evaluation, not timed)."""
        if self._test_features is None:
            self._test_features = self.embedder(self.data.test.texts)
        return self._test_features

    def predict_labels(self, model: keras.Model) -> np.ndarray:
        """A Keras model's labels for the test texts, passed as a list."""
        texts, size = self.data.test.texts, self.settings.batch_size
        out = model.predict(texts, batch_size=size, verbose=0)
        return np.argmax(np.asarray(out), axis=-1)

    def tltf_model(self) -> keras.Model:
        """The default tltf text classifier at the benchmark's length."""
        return tltf.build_text_classifier(
            BACKBONE, self.num_classes, sequence_length=self.settings.sequence_length
        )


class Embedder:
    """(a)'s encoder: KerasHub preprocessor and backbone, masked mean pooling."""

    def __init__(self, folder: str, settings: Settings) -> None:
        self.preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
            folder, sequence_length=settings.sequence_length
        )
        self.backbone = keras_hub.models.Backbone.from_preset(folder)
        self.batch_size = settings.batch_size

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled embeddings; traces anew, so every call is a cold pass."""

        @tf.function
        def pooled(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
            sequence = self.backbone(inputs)["sequence_output"]
            mask = tf.cast(inputs["padding_mask"], sequence.dtype)[..., None]
            total = tf.reduce_sum(sequence * mask, axis=1)
            return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)

        batches = tf.data.Dataset.from_tensor_slices(texts).batch(self.batch_size)
        batches = batches.map(self.preprocessor).prefetch(tf.data.AUTOTUNE)
        return np.concatenate([pooled(batch).numpy() for batch in batches])


# --- the arms ---


def arm_probe(bench: Bench, train: Split, epochs: int) -> Outcome:
    """(a): one embedding pass, then LogisticRegression (raw and L2-normalized)."""
    start = time.perf_counter()
    features = bench.embedder(train.texts)
    embed_seconds = time.perf_counter() - start
    test = bench.test_features()
    extra: dict[str, Any] = {"embedding_pass_seconds": embed_seconds}
    predicted = None
    for variant, scale in (("raw", _identity), ("l2", _l2)):
        begin = time.perf_counter()
        probe = LogisticRegression(max_iter=1000).fit(scale(features), train.labels)
        labels = probe.predict(scale(test))
        extra[f"{variant}_fit_seconds"] = time.perf_counter() - begin
        extra[f"{variant}_scores"] = scores(bench.data.test.labels, labels)
        predicted = labels if variant == "raw" else predicted
    seconds = embed_seconds + extra["raw_fit_seconds"]
    return Outcome(*scores(bench.data.test.labels, predicted), seconds, extra)


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _l2(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def arm_kerashub(bench: Bench, train: Split, epochs: int) -> Outcome:
    """(b): ``BertTextClassifier.from_preset`` and its default compile."""
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        bench.folder, sequence_length=bench.settings.sequence_length
    )
    model = keras_hub.models.BertTextClassifier.from_preset(
        bench.folder, num_classes=bench.num_classes, preprocessor=preprocessor
    )
    return timed_and_scored(
        bench,
        model,
        lambda timer: model.fit(
            train.texts,
            train.labels,
            batch_size=bench.settings.batch_size,
            epochs=epochs,
            callbacks=[timer],
            verbose=0,
        ),
    )


def arm_frozen_head(bench: Bench, train: Split, epochs: int) -> Outcome:
    """(c): `tltf.fit_frozen_head` with its defaults, validated on the val split."""
    model = bench.tltf_model()
    val = bench.data.val
    return timed_and_scored(
        bench,
        model,
        lambda timer: tltf.fit_frozen_head(
            model,
            (train.texts, train.labels),
            (val.texts, val.labels),
            callbacks=[timer],
            verbose=0,
        ),
    )


def timed_and_scored(bench: Bench, model: keras.Model, train: Any) -> Outcome:
    """Times ``train(epoch_timer)``, then scores ``model`` on the test split."""
    timer = EpochTimer()
    start = time.perf_counter()
    train(timer)
    seconds = time.perf_counter() - start
    extra = {"epoch_seconds": timer.seconds, "learning_rate": _rate(model)}
    predicted = bench.predict_labels(model)
    return Outcome(*scores(bench.data.test.labels, predicted), seconds, extra)


def arm_fine_tune(bench: Bench, train: Split, epochs: int) -> Outcome:
    """(d): `tltf.fine_tune` with its defaults for ``epochs`` unfrozen epochs."""
    model = bench.tltf_model()
    timer = EpochTimer()
    start = time.perf_counter()
    history = tltf.fine_tune(
        model, (train.texts, train.labels), epochs=epochs, callbacks=[timer], verbose=0
    )
    seconds = time.perf_counter() - start
    lr_keys = [k for k in history.history if k.startswith("lr_")]
    extra = {
        "epoch_seconds": timer.seconds,
        "unfrozen_epoch_seconds": timer.seconds[-epochs:],
        "frozen_epochs": len(timer.seconds) - epochs,
        "rates_by_epoch": {k: history.history[k] for k in lr_keys},
        "train_accuracy_by_epoch": history.history.get("accuracy"),
    }
    predicted = bench.predict_labels(model)
    return Outcome(*scores(bench.data.test.labels, predicted), seconds, extra)


def arm_tune(bench: Bench, train: Split, epochs: int) -> Outcome:
    """(e): `tltf.tune_learning_rate` (defaults), validated on CLINC's val split."""
    val = bench.data.val
    directory = tempfile.mkdtemp(prefix="tune-", dir=bench.workdir)
    start = time.perf_counter()
    result = tltf.tune_learning_rate(
        BACKBONE,
        (train.texts, train.labels),
        (val.texts, val.labels),
        num_classes=bench.num_classes,
        directory=directory,
        verbose=0,
        sequence_length=bench.settings.sequence_length,
    )
    seconds = time.perf_counter() - start
    extra = {
        "best_hyperparameters": result.best_hyperparameters,
        "best_model_weights": result.best_model_weights,
        "trials": len(result.trials),
        "objective": result.objective,
        "base_batches": result.base_batches,
        "base_batches_without_reuse": result.base_batches_without_reuse,
    }
    predicted = bench.predict_labels(result.best_model)
    return Outcome(*scores(bench.data.test.labels, predicted), seconds, extra)


def _rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


ARM_FUNCTIONS: dict[str, Callable[[Bench, Split, int], Outcome]] = {
    "a": arm_probe,
    "b": arm_kerashub,
    "c": arm_frozen_head,
    "d": arm_fine_tune,
    "e": arm_tune,
}
ALL_ARMS = "".join(ARM_FUNCTIONS)


def run_arm(key: str, bench: Bench, train: Split, epochs: int, seed: int) -> Outcome:
    """Runs one arm from a fixed seed; a failure becomes a reported `Outcome`."""
    started = time.strftime("%H:%M:%S")
    outcome = common.run_isolated(
        seed,
        lambda: ARM_FUNCTIONS[key](bench, train, epochs),
        lambda error: Outcome(error=error),
    )
    _log_arm(key, started, len(train.texts), outcome)
    return outcome


def _log_arm(key: str, started: str, n: int, outcome: Outcome) -> None:
    if outcome.error:
        print(f"[{started}] ({key}) on {n} texts FAILED: {outcome.error}", flush=True)
        return
    print(
        f"[{started}] ({key}) on {n} texts: accuracy {outcome.accuracy:.2f}, "
        f"macro-F1 {outcome.macro_f1:.2f}, {outcome.seconds:.0f}s",
        flush=True,
    )


def run_all(bench: Bench, progress: Path) -> dict[str, Any]:
    """Every arm on every draw of the few-shot data, then on the full data.

    The figures so far go to ``progress`` after every arm (for watching a
    long run; the report is written only from a finished one).
    """
    s = bench.settings
    results: dict[str, Any] = {"few_shot": {key: [] for key in s.arms}, "full": {}}
    for seed in s.seeds:
        train = few_shot(bench.data.train, s.shots, seed)
        for key in s.arms:
            outcome = run_arm(key, bench, train, s.few_shot_epochs, seed)
            results["few_shot"][key].append(dataclasses.asdict(outcome))
            write_text(progress, json.dumps(results, default=str))
    for key in s.arms:
        outcome = run_arm(key, bench, bench.data.train, s.epochs, 0)
        results["full"][key] = dataclasses.asdict(outcome)
        write_text(progress, json.dumps(results, default=str))
    return results


# --- the run ---


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--arms`` must name arms of `ARM_FUNCTIONS`."""
    parser = common.parser(__doc__, quick="smoke run, minutes")
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="data_full.json")
    parser.add_argument(
        "--arms", default=ALL_ARMS, help="subset of arms to run, e.g. 'ab'"
    )
    args = parser.parse_args(argv)
    if not args.arms or set(args.arms) - set(ALL_ARMS):
        parser.error(f"--arms takes letters of {ALL_ARMS}. Received: {args.arms!r}")
    if not Path(args.data).is_file():
        parser.error(
            f"CLINC150 not found at {args.data}: pass --data PATH/TO/data_full.json."
        )
    return args


def config(settings: Settings, data: Clinc) -> dict[str, Any]:
    """The settings and data sizes the report quotes."""
    return {
        **dataclasses.asdict(settings),
        "backbone": BACKBONE,
        "num_train": len(data.train.texts),
        "num_val": len(data.val.texts),
        "num_test": len(data.test.texts),
    }


def main(argv: list[str] | None = None) -> None:
    """Runs every arm, then writes the record and the report and prints it."""
    args = parse_args(argv)
    threads = common.set_threads(args.threads)
    settings = Settings.for_quick(args.arms) if args.quick else Settings(arms=args.arms)
    output = common.output_path(args.output, HERE, "RESULTS.md", args.quick)
    started = time.time()
    info = common.machine(started, libraries=LIBRARIES)
    info["TensorFlow threads"] = threads
    data = load_clinc(
        Path(args.data),
        settings.intents,
        settings.train_per_intent,
        settings.eval_per_intent,
    )
    print(f"CLINC150 benchmark, arms {settings.arms}, started {info['date (UTC)']}")
    with tempfile.TemporaryDirectory(prefix="tltf-clinc-") as tmp:
        bench = Bench(data, settings, Path(tmp))
        results = {"token_lengths": token_lengths(data.train.texts, bench.folder)}
        progress = Path(tempfile.gettempdir()) / "clinc150-progress.json"
        results.update(run_all(bench, progress))
    common.finish(info, started)
    flags = " --quick" if args.quick else ""
    flags += f" --arms {args.arms}" if args.arms != ALL_ARMS else ""
    command, cfg = f"python -m benchmarks.clinc150.run{flags}", config(settings, data)
    record = common.new_record(__package__ + ".report", command, cfg, results, info)
    common.save_run(output, record)


if __name__ == "__main__":
    main()
