"""One measurement per process: ``python -m benchmarks.speed.parts PART CONFIG``.

Each part prints one line ``RESULT <json>`` with its figures and the peak
resident memory of its own process (``ru_maxrss``), so the memory peaks of
tltf and of the baseline do not mix (except in `finetune_xla`, which runs
both). `benchmarks/speed/run.py` runs them all.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import tltf
from benchmarks.common import set_threads
from benchmarks.speed import frozen
from benchmarks.speed.baseline import build_recipe_model, unfreeze_recipe

PARTS = {}


def part(fn):
    """Registers a measurement under its function name."""
    PARTS[fn.__name__] = fn
    return fn


# --- shared helpers ---


def load(cfg: dict[str, Any], cache: bool = True) -> tltf.data.LoadedData:
    """The JPEG folder through tltf's loader, split 80/20."""
    size = cfg["image_size"]
    return tltf.data.image_folder(
        cfg["folder"],
        image_size=(size, size),
        batch_size=cfg["batch_size"],
        cache=cache,
    )


def warm(*datasets: tf.data.Dataset | None) -> None:
    """Iterates once so decoding and the loader's cache are not timed."""
    for ds in datasets:
        if ds is not None:
            for _ in ds:
                pass


def shape(cfg: dict[str, Any]) -> tuple[int, int, int]:
    return (cfg["image_size"], cfg["image_size"], 3)


def tltf_model(cfg: dict[str, Any], **kwargs: Any) -> keras.Model:
    return tltf.build_image_classifier(
        "keras:mobilenet_v2",
        cfg["num_classes"],
        weights=cfg["weights"],
        input_shape=shape(cfg),
        **kwargs,
    )


class StepTimes(keras.callbacks.Callback):
    """Wall time of every train step (the compiled step includes the input)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[tuple[int, float]] = []
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append((self.epoch, time.perf_counter() - self.start))

    def median_after_first_epoch(self) -> float:
        steady = [t for epoch, t in self.times if epoch >= 1]
        return float(np.median(steady))


def step_time(model, train, epochs: int = 2, callbacks=()) -> float:
    """Median train step (seconds) after a first, warm-up epoch."""
    timer = StepTimes()
    model.fit(train, epochs=epochs, callbacks=[*callbacks, timer], verbose=0)
    return timer.median_after_first_epoch()


# --- 0. data and weights, shared by every part ---


@part
def prepare(cfg):
    """Writes the JPEG folder, the base weights and the decoded training pixels."""
    rng = np.random.default_rng(cfg["seed"])
    size, root = cfg["image_size"], Path(cfg["folder"])
    palette = [(220, 40, 40), (40, 200, 40), (40, 40, 220), (220, 200, 40)]
    colours = [palette[k % 4] for k in range(cfg["num_classes"])]
    for label in range(cfg["num_classes"]):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(cfg["images_per_class"]):
            image = rng.normal(128, 40, (size, size, 3))
            side = 5 * size // 8  # A class-coloured square at a random place.
            top, left = rng.integers(0, size - side, 2)
            image[top : top + side, left : left + side] = colours[label]
            image = np.clip(image + rng.normal(0, 25, image.shape), 0, 255)
            jpeg = tf.io.encode_jpeg(image.astype("uint8"), quality=90)
            (folder / f"{i:05d}.jpg").write_bytes(jpeg.numpy())
    data = load(cfg, cache=False)
    base = keras.applications.MobileNetV2(
        input_shape=shape(cfg), include_top=False, weights=None
    )
    calibrate_batchnorm(base, next(iter(data.train.unbatch().batch(128)))[0])
    base.save_weights(cfg["weights"])
    x, y = pixels(data.train)
    vx, vy = pixels(data.validation)
    np.savez(cfg["arrays"], x=x, y=y, vx=vx, vy=vy)
    return {"num_train": data.num_train, "num_validation": data.num_validation}


def pixels(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """One pass of a batched dataset as arrays (training data: one shuffle)."""
    x, y = zip(*[(x.numpy(), y.numpy()) for x, y in ds.unbatch()])
    return np.stack(x), np.array(y)


def calibrate_batchnorm(base: keras.Model, pixels: tf.Tensor) -> None:
    """Sets BatchNorm statistics of a random base from one batch of images.

    A randomly initialised MobileNetV2 in inference mode shrinks its
    activations to ~1e-13 (its BatchNorm statistics are 0 and 1), so every
    image gets the same features. One training-mode pass with momentum 0
    stores each layer's batch statistics: the base then gives varied
    features, as pretrained weights would (ImageNet weights cannot be
    downloaded here).
    """
    layers = [x for x in base.layers if isinstance(x, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    base(pixels / 127.5 - 1.0, training=True)
    for layer, momentum in zip(layers, momenta):
        layer.momentum = momentum


# --- 1. frozen stage (see frozen.py) ---


@part
def frozen_tltf(cfg):
    """Floor and tltf's frozen stage, alternating; paired accuracy."""

    def model_fn(size: int) -> keras.Model:
        return tltf_model({**cfg, "image_size": size}, dropout=0.2)

    return frozen.run_interleaved(cfg, model_fn)


@part
def frozen_baseline(cfg):
    """The Keras recipe's frozen stage: fit over the images every epoch."""
    return frozen.run_recipe(cfg, build_recipe_model)


# --- 2. fine-tuning step ---


@part
def finetune_baseline(cfg):
    data = load(cfg)
    warm(data.train)
    model, base = build_recipe_model(shape(cfg), cfg["num_classes"], cfg["weights"])
    unfreeze_recipe(model, base, jit_compile=cfg["jit"])
    return {"step_seconds": step_time(model, finetune_data(cfg, data))}


def finetune_data(cfg: dict[str, Any], data: tltf.data.LoadedData) -> tf.data.Dataset:
    """A few steps per epoch (fewer with XLA: it is slow on CPU)."""
    return data.train.take(
        cfg["finetune_steps_jit" if cfg["jit"] else "finetune_steps"]
    )


@part
def finetune_tltf(cfg):
    data = load(cfg)
    warm(data.train)
    model = tltf_model(cfg, dropout=0.2)
    callbacks, how = unfreezing(model, cfg)
    step = step_time(model, finetune_data(cfg, data), callbacks=callbacks)
    return {"step_seconds": step, "how": how}


@part
def finetune_xla(cfg):
    """Both fine-tuning steps with XLA, alternating epochs in one process.

    With XLA on CPU a step takes seconds and each model compiles for tens of
    seconds, so a process per model and round would take minutes and meet
    different slow spells of a shared machine. Instead tltf's ``fit`` runs
    the recipe's next epoch at the end of each of its own epochs (a
    callback; the recipe's compiled step is kept from one ``fit`` to the
    next): both models see the same machine, epoch after epoch.
    """
    cfg = {**cfg, "jit": True}
    data = load(cfg)
    warm(data.train)
    train = finetune_data(cfg, data)
    recipe, base = build_recipe_model(shape(cfg), cfg["num_classes"], cfg["weights"])
    unfreeze_recipe(recipe, base, jit_compile=True)
    recipe_times, tltf_times = StepTimes(), StepTimes()

    def recipe_epoch(epoch, logs=None):
        recipe.fit(
            train,
            initial_epoch=epoch,
            epochs=epoch + 1,
            callbacks=[recipe_times],
            verbose=0,
        )

    model = tltf_model(cfg, dropout=0.2)
    callbacks, how = unfreezing(model, cfg)
    alternate = keras.callbacks.LambdaCallback(on_epoch_end=recipe_epoch)
    model.fit(
        train,
        epochs=1 + cfg["xla_epochs"],
        callbacks=[*callbacks, tltf_times, alternate],
        verbose=0,
    )
    return {
        "baseline_step_seconds": recipe_times.median_after_first_epoch(),
        "tltf_step_seconds": tltf_times.median_after_first_epoch(),
        "baseline_steps": [t for _, t in recipe_times.times],
        "tltf_steps": [t for _, t in tltf_times.times],
        "how": how,
    }


def unfreezing(model: keras.Model, cfg: dict[str, Any]) -> tuple[list, str]:
    """The staged-unfreezing callback, unfreezing every group from epoch 0."""
    tltf.compile_model(model, learning_rate=1e-5, jit_compile=cfg["jit"])
    callback = tltf.StagedUnfreezing({0: "all"}, verbose=0)
    return [callback], "StagedUnfreezing({0: 'all'})"


# --- 3. input pipeline ---


@part
def pipeline(cfg):
    """One tltf model fed, epoch after epoch in turn, from in-memory tensors,
    the cached JPEG folder and the uncached one (decoding every epoch).

    The model and its traced step are shared, so only the input differs; the
    first round warms up (tracing, filling the folder's cache) and is not
    counted. Each input keeps its fastest epoch median of the later rounds.
    """
    arrays = np.load(cfg["arrays"])
    inputs = {
        "tensors": tltf.data.from_arrays(
            arrays["x"], arrays["y"], batch_size=cfg["batch_size"]
        ).train,
        "folder": load(cfg, cache=True).train,
        "folder_nocache": load(cfg, cache=False).train,
    }
    model = tltf_model(cfg, dropout=0.2)
    medians = {name: [] for name in inputs}
    for _ in range(cfg["pipeline_rounds"]):
        for name, ds in inputs.items():
            timer = StepTimes()
            model.fit(ds, epochs=1, callbacks=[timer], verbose=0, shuffle=False)
            medians[name].append(float(np.median([t for _, t in timer.times])))
    return {
        name: {"step_seconds": min(m[1:]), "rounds_step_seconds": m}
        for name, m in medians.items()
    }


# --- 4. serving ---


def latency(call, x1, x64, calls: int, batches: int = 5) -> dict[str, float]:
    """Batch-1 latency percentiles and batch-64 throughput (images/s)."""
    for _ in range(5):
        np.asarray(call(x1))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        np.asarray(call(x1))
        times.append(time.perf_counter() - start)
    np.asarray(call(x64))
    start = time.perf_counter()
    for _ in range(batches):
        np.asarray(call(x64))
    per_batch = (time.perf_counter() - start) / batches
    return {
        "p50_ms": 1000 * float(np.percentile(times, 50)),
        "p95_ms": 1000 * float(np.percentile(times, 95)),
        "throughput": len(x64) / per_batch,
    }


def serving_inputs(cfg) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (64, *shape(cfg))).astype("float32")
    return x[:1], x


@part
def export(cfg):
    model = tltf_model(cfg, dropout=0.2)
    tltf.export_saved_model(model, cfg["export_dir"], overwrite=True, verify=False)
    return {"how": "tltf.export_saved_model"}


@part
def serve_keras(cfg):
    model = tltf_model(cfg, dropout=0.2)
    x1, x64 = serving_inputs(cfg)
    return latency(lambda x: model(x, training=False), x1, x64, cfg["serving_calls"])


@part
def serve_savedmodel(cfg):
    loaded = tf.saved_model.load(cfg["export_dir"])
    name = "pixels" if "pixels" in loaded.signatures else "serving_default"
    signature = loaded.signatures[name]
    arg = next(iter(signature.structured_input_signature[1]))
    x1, x64 = serving_inputs(cfg)

    def call(x):
        return next(iter(signature(**{arg: tf.constant(x)}).values()))

    return {**latency(call, x1, x64, cfg["serving_calls"]), "signature": name}


def main() -> None:
    name, config = sys.argv[1], json.loads(Path(sys.argv[2]).read_text())
    set_threads(config.get("threads"))
    keras.utils.set_random_seed(config["seed"])
    result = PARTS[name](config)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
