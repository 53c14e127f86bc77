"""Domain adaptation: `tltf.adapt_domain` against source-only training and the oracle.

Usage (from the repository root)::

    python -m benchmarks.domain_adaptation.run --threads 1   # the full run (~25 min)
    python -m benchmarks.domain_adaptation.run --quick       # smoke run, about a minute

One process, one small convolutional base trained from scratch (as the DANN
paper trains MNIST -> MNIST-M), built with `tltf.build_image_classifier`.
The shift: scikit-learn's digits, grey (source) -> blended over colour
textures MNIST-M style (target); see `data.py`. The arms,
the same model, epochs, batch size and seed for each:

- source only: ``model.fit`` on labelled source data;
- `tltf.adapt_domain` with ``"dann"``, ``"coral"`` and ``"mmd"`` (labelled
  source, unlabelled target training images), at their defaults;
- the same at other weights (`TUNED`: what the trials on target validation
  pointed to), to show what choosing the weight on a labelled target
  validation set can reach;
- the target oracle: ``model.fit`` on labelled target training data.

Each reports target and source test accuracy and wall time; the run is
repeated over several seeds (means reported). Then the cost of one
adaptation step against one plain training step, alternating calls on the
same model and batch. The record (``RESULTS.json``) and the report
(``RESULTS.md``, `report.py`) are written once, at the end.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tltf  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.domain_adaptation.data import Shift, digits_shift  # noqa: E402
from tltf.files import write_text  # noqa: E402

HERE = Path(__file__).resolve().parent
METHODS = ("dann", "coral", "mmd")
#: Adaptation arms at another weight than the default: "method:weight".
TUNED = ("dann:0.3", "mmd:3", "mmd:10")
ARMS = ("source_only", *METHODS, *TUNED, "oracle")


def method_of(arm: str) -> tuple[str, float | None]:
    """``"mmd:10"`` -> ``("mmd", 10.0)``; ``"mmd"`` -> ``("mmd", None)``."""
    method, _, weight = arm.partition(":")
    return method, float(weight) if weight else None


@dataclasses.dataclass
class Settings:
    """What one run measures; `for_quick` shrinks everything for a smoke run."""

    # DANN's paper trains for thousands of steps; 40 epochs of ~19 steps
    # (~760) is what fits 5 arms x 3 seeds in ~15 min on 2 cores, and longer
    # runs moved no arm by more than a point or two in the trials.
    epochs: int = 40
    batch_size: int = 64
    seeds: tuple[int, ...] = (0, 1, 2)
    # adapt_domain's largest adaptation weight per method: tltf's default.
    weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(METHODS, default_weight())
    )
    hidden_units: tuple[int, ...] = ()  # align the flattened conv features
    limit: int | None = None  # None: all 1797 digits
    val: int = 200
    test: int = 400
    timing_rounds: int = 4  # alternating fit / adapt_domain calls, each
    timing_steps: int = 30  # ... of this many steps
    quick: bool = False

    @classmethod
    def for_quick(cls) -> Settings:
        """200 digits, 2 epochs, one seed, one short timing round."""
        return cls(
            epochs=2,
            seeds=(0,),
            limit=200,
            val=40,
            test=40,
            timing_rounds=1,
            timing_steps=6,
            quick=True,
        )


def default_weight() -> float:
    """`tltf.adapt_domain`'s default ``weight``."""
    return float(inspect.signature(tltf.adapt_domain).parameters["weight"].default)


# --- the model ---


def digits_base(input_shape: tuple[int, int, int] = (32, 32, 3)) -> keras.Model:
    """DANN's MNIST feature extractor: conv 5x5x32, pool, conv 5x5x48, pool."""
    inputs = keras.Input(input_shape)
    x = inputs
    for i, filters in enumerate((32, 48), start=1):
        x = keras.layers.Conv2D(
            filters, 5, padding="same", activation="relu", name=f"block{i}_conv"
        )(x)
        x = keras.layers.MaxPooling2D(name=f"block{i}_pool")(x)
    return keras.Model(inputs, x, name="digits_base")


GROUPS = {f"block{i}": [f"block{i}_conv", f"block{i}_pool"] for i in (1, 2)}


def build_model(settings: Settings) -> keras.Model:
    """The classifier every arm trains: all groups trainable, from scratch."""
    model = tltf.build_image_classifier(
        digits_base(),
        10,
        weights=None,
        pooling="flatten",
        hidden_units=settings.hidden_units,
        dropout=0.0,
        preprocessing="unit",
        layer_groups=GROUPS,
    )
    tltf.set_trainable_groups(model, list(GROUPS))
    tltf.compile_model(model)  # Recompile: the trainable set changed.
    return model


def labelled(
    x: np.ndarray, y: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled (reshuffled each epoch) batches of ``(x, y)``."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


# --- the arms ---


@dataclasses.dataclass
class Outcome:
    """One arm, one seed: test accuracies (%), wall seconds, last-epoch logs."""

    target: float | None = None
    source: float | None = None
    target_val: float | None = None
    seconds: float | None = None
    logs: dict[str, float] = dataclasses.field(default_factory=dict)
    error: str | None = None
    warning: str | None = None  # `adapt_domain`'s, e.g. a collapse it stopped


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in percent."""
    predicted = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
    return float(np.mean(predicted == y)) * 100


def train_arm(arm: str, shift: Shift, s: Settings, seed: int, **options) -> keras.Model:
    """Builds and trains one arm's model; ``options`` go to `tltf.adapt_domain`."""
    model = build_model(s)
    src, tgt, y = shift.source, shift.target, shift.labels
    method, weight = method_of(arm)
    if method in METHODS:
        options = {"weight": s.weights[method] if weight is None else weight, **options}
        train = labelled(src.train, y.train, s.batch_size, seed)
        tltf.adapt_domain(
            model, train, tgt.train, method=method, epochs=s.epochs, verbose=0,
            **options,
        )  # fmt: skip
    else:
        x = src.train if arm == "source_only" else tgt.train
        train = labelled(x, y.train, s.batch_size, seed)  # shuffles itself
        model.fit(train, epochs=s.epochs, shuffle=False, verbose=0)
    return model


def run_arm(arm: str, shift: Shift, s: Settings, seed: int, **options) -> Outcome:
    """One arm from a fixed seed; a failure becomes a reported `Outcome`."""
    outcome = common.run_isolated(
        seed,
        lambda: measure_arm(arm, shift, s, seed, **options),
        lambda error: Outcome(error=error),
    )
    _log(arm, seed, outcome)
    return outcome


def measure_arm(arm: str, shift: Shift, s: Settings, seed: int, **options) -> Outcome:
    """Trains one arm and scores it; what `adapt_domain` warned of is kept."""
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = train_arm(arm, shift, s, seed, **options)
    seconds = time.perf_counter() - start
    said = [str(w.message) for w in caught if "adapt_domain" in str(w.message)]
    y = shift.labels
    history = model.history.history if model.history else {}
    return Outcome(
        target=accuracy(model, shift.target.test, y.test),
        source=accuracy(model, shift.source.test, y.test),
        target_val=accuracy(model, shift.target.val, y.val),
        seconds=seconds,
        logs={k: float(v[-1]) for k, v in history.items()},
        warning=" ".join(said) or None,
    )


def _log(arm: str, seed: int, o: Outcome) -> None:
    stamp = time.strftime("%H:%M:%S")
    if o.error:
        print(f"[{stamp}] {arm} seed {seed} FAILED: {o.error}", flush=True)
        return
    print(
        f"[{stamp}] {arm} seed {seed}: target {o.target:.2f}, source {o.source:.2f}, "
        f"target val {o.target_val:.2f}, {o.seconds:.0f}s"
        + (f"; warned: {o.warning}" if o.warning else ""),
        flush=True,
    )


# --- the cost of a step ---


class StepTimer(keras.callbacks.Callback):
    """Wall seconds between consecutive training batches' ends."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._last: float | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds.append(now - self._last)
        self._last = now


def step_costs(shift: Shift, s: Settings) -> dict[str, Any]:
    """Seconds per step of ``fit`` and of each method, alternating calls.

    The same model, batch size and source batches; every call's first steps
    (tracing, warm-up) are dropped, then the median of the rest is kept.
    ``fit_2x`` is ``fit`` on batches twice as large: the images an
    adaptation step reads (a source and a target batch).
    """
    keras.utils.set_random_seed(0)
    model = build_model(s)
    n = s.timing_steps * s.batch_size * 2
    x, y = shift.source.train, shift.labels.train
    reps = -(-n // len(x))
    x, y = np.concatenate([x] * reps)[:n], np.concatenate([y] * reps)[:n]
    keys = ("fit", "fit_2x", *METHODS)
    times: dict[str, list[float]] = {key: [] for key in keys}
    for _ in range(s.timing_rounds):
        for key in times:
            timer = StepTimer()
            if key.startswith("fit"):
                size = s.batch_size * (2 if key == "fit_2x" else 1)
                train = labelled(x, y, size, 0).take(s.timing_steps)
                model.fit(train, epochs=1, shuffle=False, verbose=0, callbacks=[timer])
            else:
                train = labelled(x, y, s.batch_size, 0).take(s.timing_steps)
                tltf.adapt_domain(
                    model, train, shift.target.train, method=key, epochs=1,
                    weight=s.weights[key], callbacks=[timer], verbose=0,
                )  # fmt: skip
            times[key].extend(timer.seconds[2:])
    keras.backend.clear_session()
    medians = {key: float(np.median(v)) for key, v in times.items()}
    return {"median_seconds": medians, "steps_measured": len(times["fit"])}


# --- the run ---


def run_all(shift: Shift, s: Settings, progress: Path) -> dict[str, Any]:
    """Every arm for every seed, then the step costs; figures so far to ``progress``."""
    results: dict[str, Any] = {"arms": {arm: [] for arm in ARMS}}
    for seed in s.seeds:
        for arm in ARMS:
            outcome = run_arm(arm, shift, s, seed)
            results["arms"][arm].append(dataclasses.asdict(outcome))
            write_text(progress, json.dumps(results))
    print(f"[{time.strftime('%H:%M:%S')}] timing steps", flush=True)
    results["steps"] = step_costs(shift, s)
    return results


def config(settings: Settings, shift: Shift) -> dict[str, Any]:
    """The settings and data sizes the report quotes."""
    return {
        **dataclasses.asdict(settings),
        "tuned": list(TUNED),
        "description": shift.description,
        "num_train": len(shift.labels.train),
        "num_val": len(shift.labels.val),
        "num_test": len(shift.labels.test),
    }


def main(argv: list[str] | None = None) -> None:
    """Runs every arm and the step timing, then writes the record and the report."""
    args = common.parser(__doc__, quick="smoke run, about a minute").parse_args(argv)
    threads = common.set_threads(args.threads)  # Before TensorFlow runs anything.
    s = Settings.for_quick() if args.quick else Settings()
    output = common.output_path(args.output, HERE, "RESULTS.md", args.quick)
    started = time.time()
    info = common.machine(started, libraries={"scikit-learn": "sklearn"})
    info["TensorFlow threads"] = threads
    shift = digits_shift(s.limit, s.val, s.test)
    print(f"Domain adaptation benchmark, started {info['date (UTC)']}", flush=True)
    progress = Path(tempfile.gettempdir()) / "domain-adaptation-progress.json"
    results = run_all(shift, s, progress)
    common.finish(info, started)
    flags = " --quick" if args.quick else ""
    flags += f" --threads {args.threads}" if args.threads else ""
    command = f"python -m benchmarks.domain_adaptation.run{flags}"
    cfg = config(s, shift)
    record = common.new_record(__package__ + ".report", command, cfg, results, info)
    common.save_run(output, record)


if __name__ == "__main__":
    main()
