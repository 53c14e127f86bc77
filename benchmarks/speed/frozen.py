"""Part 1, the frozen stage: the forward-pass floor, tltf and the recipe.

Timing. The floor is what one pass of the base over the data costs a user
who runs it once: a fresh ``tf.function`` (traced once for every batch size)
over the training set, trace included ("cold"); the warm pass is reported
too. tltf's frozen stage is timed from a freshly built model, with a fresh
feature cache, so it pays for its own tracing and feature extraction.
Floor and tltf runs alternate in one process, several times, and each keeps
its fastest run: on a shared 2-core machine, other load only ever slows a
run down, and alternating spreads slow spells over both.

Accuracy. Both sides read the same pixels in the same fixed order (shuffled
once), start from the same head weights and draw the same dropout masks
(`pair_head`), so the difference between their validation accuracies is
what caching changes and nothing else. Runs with other seeds show how much
the accuracy moves from seed to seed.
"""

from __future__ import annotations

import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import tltf


def fixed_order_data(cfg: dict[str, Any]) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Decoded training and validation pixels, batched, in one fixed order."""
    arrays = np.load(cfg["arrays"])
    batch = cfg["batch_size"]
    train = tf.data.Dataset.from_tensor_slices((arrays["x"], arrays["y"]))
    val = tf.data.Dataset.from_tensor_slices((arrays["vx"], arrays["vy"]))
    return train.batch(batch), val.batch(batch)


def pair_head(dense: keras.layers.Dense, dropout: keras.layers.Dropout, seed: int):
    """Sets the output layer's initial weights and the dropout masks from ``seed``.

    Called on the recipe's and tltf's layers with the same seed, both heads
    start equal and drop the same units at every step.
    """
    dense.kernel.assign(keras.initializers.GlorotUniform(seed)(dense.kernel.shape))
    dense.bias.assign(np.zeros(dense.bias.shape, "float32"))
    dropout.seed_generator.state.assign(np.array([seed, 0], "int64"))


def tltf_head_layers(model: keras.Model):
    """The output Dense and the Dropout before it, in a tltf model's head."""
    head = model.head
    return head.output_layer, head.dropouts[-1]


def floor_pass(cfg: dict[str, Any], train, val=None) -> dict[str, float]:
    """One cold pass of preprocessing + base over the training set, then
    the validation set; the trace time is reported apart."""
    base = keras.applications.MobileNetV2(
        input_shape=(cfg["image_size"],) * 2 + (3,),
        include_top=False,
        weights=cfg["weights"],
    )
    forward = tf.function(lambda x: base(x / 127.5 - 1.0, training=False))
    start, cpu = time.perf_counter(), time.process_time()
    concrete = forward.get_concrete_function(
        tf.TensorSpec([None, *train.element_spec[0].shape[1:]], tf.float32)
    )
    out = {"trace_seconds": time.perf_counter() - start}
    for name, ds in (("train", train), ("val", val)):
        if ds is not None:
            start = time.perf_counter()
            [concrete(x) for x, _ in ds][-1].numpy()
            out[f"{name}_pass_seconds"] = time.perf_counter() - start
            # CPU time of the process: trace included for the training set.
            out[f"{name}_cpu_seconds"] = time.process_time() - cpu
            cpu = time.process_time()
    return out


def tltf_stage(
    cfg: dict[str, Any], train, val, seed: int, model_fn
) -> dict[str, float]:
    """tltf.fit_frozen_head from a fresh model and cache, timed in parts."""
    keras.utils.set_random_seed(seed)
    model = model_fn(cfg["image_size"])
    pair_head(*tltf_head_layers(model), seed)
    marks = {}
    head_begins = keras.callbacks.LambdaCallback(
        on_train_begin=lambda logs: marks.setdefault("head", time.perf_counter())
    )
    start, cpu = time.perf_counter(), time.process_time()
    history = tltf.fit_frozen_head(
        model,
        train,
        val,
        epochs=cfg["epochs"],
        callbacks=[head_begins],
        verbose=0,
        cache=tltf.FeatureCache(),
    )
    seconds = time.perf_counter() - start
    out = {
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "features_seconds": marks["head"] - start,
        "cached": tltf.can_cache_features(model),
    }
    if val is not None:
        out["val_accuracy"] = history.history["val_accuracy"][-1]
    return out


def run_interleaved(cfg: dict[str, Any], model_fn) -> dict[str, Any]:
    """Floor, tltf with and without validation, ``frozen_reps`` times; then
    the floor and tltf (no validation) on the same images at a larger size,
    where the base costs more per batch and the head's steps weigh less.

    The first repetition uses the paired seed (``cfg["seed"]``, as the
    recipe); later ones use other seeds for the accuracy spread.
    """
    train, val = fixed_order_data(cfg)
    runs: dict[str, list[dict]] = {"floor": [], "with_val": [], "train_only": []}
    for rep in range(cfg["frozen_reps"]):
        seed = cfg["seed"] + rep
        runs["floor"].append(floor_pass(cfg, train, val))
        runs["with_val"].append(tltf_stage(cfg, train, val, seed, model_fn))
        runs["train_only"].append(tltf_stage(cfg, train, None, seed, model_fn))
    size = cfg["frozen_large_size"]
    large = {**cfg, "image_size": size}
    resized = train.map(lambda x, y: (tf.image.resize(x, (size, size)), y)).cache()
    for _ in resized:  # Resize once, untimed.
        pass
    runs["large_floor"], runs["large_train_only"] = [], []
    for _ in range(cfg["frozen_large_reps"]):
        runs["large_floor"].append(floor_pass(large, resized))
        runs["large_train_only"].append(
            tltf_stage(large, resized, None, cfg["seed"], model_fn)
        )
    # Floors stay per run: `report.floors` keeps the fastest run's own total.
    out: dict[str, Any] = {"runs": runs}
    for name in ("with_val", "train_only", "large_train_only"):
        out[name] = {**min(runs[name], key=lambda r: r["seconds"])}
        out[name]["cpu_seconds"] = min(r["cpu_seconds"] for r in runs[name])
        out[name].pop("val_accuracy", None)
    out["paired_val_accuracy"] = runs["with_val"][0]["val_accuracy"]
    out["val_accuracy_by_seed"] = [r["val_accuracy"] for r in runs["with_val"]]
    out["cached"] = all(r["cached"] for r in runs["with_val"])
    return out


def run_recipe(cfg: dict[str, Any], build_recipe_model) -> dict[str, Any]:
    """The Keras recipe's frozen stage on the same data, paired head."""
    train, val = fixed_order_data(cfg)
    size = cfg["image_size"]
    model, _ = build_recipe_model((size, size, 3), cfg["num_classes"], cfg["weights"])
    dense, dropout = model.layers[-1], model.layers[-2]
    pair_head(dense, dropout, cfg["seed"])
    start = time.perf_counter()
    history = model.fit(
        train, validation_data=val, epochs=cfg["epochs"], verbose=0, shuffle=False
    )
    return {
        "seconds": time.perf_counter() - start,
        "val_accuracy": history.history["val_accuracy"][-1],
    }
