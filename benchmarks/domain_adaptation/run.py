"""Domain adaptation on real shifts: `tltf.adapt_domain` at its defaults.

Usage (from the repository root)::

    python -m benchmarks.domain_adaptation.run --threads 1   # the full run
    python -m benchmarks.domain_adaptation.run --quick       # smoke run, ~2 min

Four shifts (`shifts.py`, `text.py`): MNIST -> USPS, USPS -> MNIST,
textured digits, and the 12 Amazon review pairs. For each shift and seed:

- source only: ``adapt_domain(..., weight=0)``: the default method's recipe
  on the labelled source alone (what the do-no-harm check compares with);
- default: ``adapt_domain(model, source, target_inputs)`` with every
  default (``method="auto"``: MCC with its SGD recipe for the ten digit
  classes, MMD and a round of self-training for the two review classes;
  weight 1; the check), given the source-only model above as ``baseline=``
  so the run does not train it twice;
- auto (text): the same with ``weight="auto"``;
- oracle: the source-only recipe on the labelled target train part.

No target label is used by any arm but the oracle; nothing is chosen on
target test. Images: TLlib's LeNet (conv 20, conv 50, dense 500, a 256-unit
bottleneck with BatchNorm) built with `tltf.build_image_classifier`, all of
it trained from scratch. Text: a head (hidden 256, dropout 0.1) on frozen
MiniLM features. Then the cost of a step: ``fit`` on the images one MCC step
reads (a source and a target batch) against an MCC step, alternating.
"""

from __future__ import annotations

import dataclasses
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
from benchmarks.domain_adaptation.shifts import Task, image_tasks  # noqa: E402
from benchmarks.domain_adaptation.text import text_tasks  # noqa: E402
from tltf.files import write_text  # noqa: E402

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class Settings:
    """What one run measures; `for_quick` shrinks everything for a smoke run."""

    # Epochs per shift: about 1,200 steps of batch 32 for each image shift,
    # as the trials behind the defaults ran (TLlib runs 50,000 at batch 128:
    # too long for a shared CPU), 20 for the text pairs (880 steps).
    epochs: dict[str, int] = dataclasses.field(
        default_factory=lambda: {"M->U": 6, "U->M": 6, "textured": 32, "text": 20}
    )
    batch_size: int = 32
    seeds: tuple[int, ...] = (0, 1, 2)
    oracle_seeds: tuple[int, ...] = (0,)  # images; text runs every seed
    auto_text: bool = True
    limit: int | None = None
    timing_rounds: int = 3
    timing_steps: int = 25
    quick: bool = False

    @classmethod
    def for_quick(cls) -> Settings:
        return cls(
            epochs={"M->U": 1, "U->M": 1, "textured": 1, "text": 1},
            seeds=(0,),
            limit=256,
            timing_rounds=1,
            timing_steps=5,
            quick=True,
        )


# --- the models ---

GROUPS = {"lenet": ["conv1", "conv2", "drop2", "dense", "drop", "bottleneck", "bn"]}


def _torch_init() -> keras.initializers.Initializer:
    """PyTorch's default kernel init, U(+-1/sqrt(fan_in)), as TLlib's LeNet has."""
    return keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")


def lenet(input_shape: tuple[int, ...]) -> keras.Model:
    """TLlib's LeNet (``--no-pool``) with its 256-unit BatchNorm bottleneck."""
    init = _torch_init()
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(20, 5, kernel_initializer=init, name="conv1")(inputs)
    x = keras.layers.ReLU()(keras.layers.MaxPooling2D()(x))
    x = keras.layers.Conv2D(50, 5, kernel_initializer=init, name="conv2")(x)
    x = keras.layers.SpatialDropout2D(0.5, name="drop2")(x)
    x = keras.layers.ReLU()(keras.layers.MaxPooling2D()(x))
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(500, "relu", kernel_initializer=init, name="dense")(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.Dense(256, kernel_initializer=init, name="bottleneck")(x)
    x = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="bn")(x)
    return keras.Model(inputs, keras.layers.ReLU()(x), name="lenet")


def image_model(input_shape: tuple[int, ...]) -> keras.Model:
    """The LeNet classifier, every layer trainable, BatchNorm in training mode."""
    model = tltf.build_image_classifier(
        lenet(input_shape), 10, weights=None, pooling=None, dropout=0.0,
        preprocessing="tf", layer_groups=GROUPS, train_bn=True,
    )  # fmt: skip
    tltf.set_trainable_groups(model, list(GROUPS))
    tltf.compile_model(model)  # Recompile: the trainable set changed.
    return model


def text_model(dim: int = 384) -> keras.Model:
    """A head (hidden 256, dropout 0.1) on precomputed frozen MiniLM features."""
    inputs = keras.Input((dim,))
    base = keras.Model(inputs, keras.layers.Identity()(inputs), name="minilm_features")
    return tltf.build_image_classifier(
        base, 2, weights=None, input_shape=(dim,), pooling=None, dropout=0.1,
        hidden_units=(256,), preprocessing="none",
    )  # fmt: skip


def labelled(x: np.ndarray, y: np.ndarray, batch: int, seed: int) -> tf.data.Dataset:
    """Shuffled (reshuffled each epoch) batches of ``(x, y)``."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def accuracy(model: keras.Model, x: np.ndarray, y: np.ndarray) -> float:
    predicted = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
    return float(np.mean(predicted == y)) * 100


# --- the arms ---


def measure_seed(task: Task, kind: str, s: Settings, seed: int) -> dict[str, Any]:
    """Every arm of one shift and seed (models share their starting weights)."""
    epochs = s.epochs["text" if kind == "text" else task.name]
    src, tgt = task.source, task.target

    def build() -> keras.Model:
        keras.utils.set_random_seed(seed)
        return text_model() if kind == "text" else image_model(src.train.x.shape[1:])

    def score(model, seconds, said=None) -> dict[str, Any]:
        history = model.history
        return {
            "target": accuracy(model, tgt.test.x, tgt.test.y),
            "source": accuracy(model, src.test.x, src.test.y),
            "seconds": seconds,
            "check": getattr(history, "adaptation", None),
            "warning": said,
        }

    def train(model, domain, **options) -> tuple[float, str | None]:
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            tltf.adapt_domain(
                model, labelled(domain.train.x, domain.train.y, s.batch_size, seed),
                tgt.train.x, epochs=epochs, verbose=0, **options,
            )  # fmt: skip
        said = [str(w.message) for w in caught if "adapt_domain" in str(w.message)]
        return time.perf_counter() - start, " ".join(said) or None

    out: dict[str, Any] = {}
    source_only = build()
    seconds, said = train(source_only, src, weight=0)
    out["source_only"] = score(source_only, seconds, said)
    model = build()
    seconds, said = train(model, src, baseline=source_only)
    out["default"] = score(model, seconds, said)
    if kind == "text" and s.auto_text:
        model = build()
        seconds, said = train(model, src, weight="auto", baseline=source_only)
        out["auto"] = score(model, seconds, said)
    if kind == "text" or seed in s.oracle_seeds:
        model = build()
        seconds, said = train(model, tgt, weight=0)
        out["oracle"] = score(model, seconds, said)
    return out


def run_task(task: Task, kind: str, s: Settings, results: dict, progress: Path) -> None:
    for seed in s.seeds:
        out = common.run_isolated(
            seed,
            lambda seed=seed: measure_seed(task, kind, s, seed),
            lambda e: {"error": e},
        )
        results["tasks"].setdefault(task.name, {"kind": kind, "seeds": []})
        results["tasks"][task.name]["seeds"].append(out)
        write_text(progress, json.dumps(results))
        _log(task.name, seed, out)


def _log(name: str, seed: int, out: dict) -> None:
    stamp = time.strftime("%H:%M:%S")
    if "error" in out:
        print(f"[{stamp}] {name} seed {seed} FAILED: {out['error']}", flush=True)
        return
    parts = [
        f"{arm} {o['target']:.2f} (src {o['source']:.2f}, {o['seconds']:.0f}s)"
        for arm, o in out.items()
    ]
    kept = (out["default"].get("check") or {}).get("kept")
    print(
        f"[{stamp}] {name} seed {seed}: " + "; ".join(parts) + f"; kept {kept}",
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


def step_costs(task: Task, s: Settings) -> dict[str, Any]:
    """Median seconds per step: ``fit`` on B and 2B images, an MCC step on B + B.

    The same model and source images, alternating calls; every call's first
    steps (tracing, warm-up) are dropped.
    """
    keras.utils.set_random_seed(0)
    model = image_model(task.source.train.x.shape[1:])
    x, y = task.source.train.x, task.source.train.y
    b = s.batch_size
    times: dict[str, list[float]] = {"fit": [], "fit_2x": [], "mcc": []}
    for _ in range(s.timing_rounds):
        for key in times:
            timer = StepTimer()
            if key.startswith("fit"):
                size = b * (2 if key == "fit_2x" else 1)
                train = labelled(x, y, size, 0).take(s.timing_steps)
                model.fit(train, epochs=1, verbose=0, callbacks=[timer])
            else:
                train = labelled(x, y, b, 0).take(s.timing_steps)
                tltf.adapt_domain(
                    model, train, task.target.train.x, epochs=1, check=False,
                    callbacks=[timer], verbose=0,
                )  # fmt: skip
            times[key].extend(timer.seconds[2:])
    keras.backend.clear_session()
    return {
        "shift": task.name,
        "median_seconds": {k: float(np.median(v)) for k, v in times.items()},
        "steps_measured": len(times["fit"]),
    }


# --- the run ---


def main(argv: list[str] | None = None) -> None:
    args = common.parser(__doc__, quick="smoke run, ~2 min").parse_args(argv)
    threads = common.set_threads(args.threads)
    s = Settings.for_quick() if args.quick else Settings()
    output = common.output_path(args.output, HERE, "RESULTS.md", args.quick)
    started = time.time()
    info = common.machine(started)
    info["TensorFlow threads"] = threads
    print(f"Domain adaptation benchmark, started {info['date (UTC)']}", flush=True)
    progress = Path(tempfile.gettempdir()) / "domain-adaptation-progress.json"
    results: dict[str, Any] = {"tasks": {}}
    images = image_tasks(s.limit)
    for task in text_tasks(s.limit):
        run_task(task, "text", s, results, progress)
    for task in images:
        run_task(task, "image", s, results, progress)
    print(f"[{time.strftime('%H:%M:%S')}] timing steps", flush=True)
    results["steps"] = common.run_isolated(
        0, lambda: step_costs(images[1], s), lambda e: {"error": e}
    )
    common.finish(info, started)
    flags = " --quick" if args.quick else ""
    flags += f" --threads {args.threads}" if args.threads else ""
    command = f"python -m benchmarks.domain_adaptation.run{flags}"
    config = {
        **dataclasses.asdict(s),
        "descriptions": {t.name: t.description for t in images},
        "sizes": {
            t.name: {
                "source_train": len(t.source.train.y),
                "target_train": len(t.target.train.y),
                "target_test": len(t.target.test.y),
            }
            for t in images
        },
    }
    record = common.new_record(__package__ + ".report", command, config, results, info)
    common.save_run(output, record)


if __name__ == "__main__":
    main()
