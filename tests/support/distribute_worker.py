"""Subprocess worker for tests/distribute/test_distribute.py (not a test module).

Distribution needs a fresh TensorFlow: logical CPU devices and multi-worker
collectives must be configured before TensorFlow initializes, which has long
happened inside a pytest process. Each mode prints one JSON line, prefixed
with ``RESULT ``, to stdout.

Modes:
    mirrored: trains the same tiny model on one device and with
        MirroredStrategy over two logical CPUs (same seed, same global batch)
        and reports how far apart the weights end up.
    multiworker: one worker of a MultiWorkerMirroredStrategy run configured by
        TF_CONFIG; saves its final weights to ``--out``. With ``--die-at``,
        the worker kills itself once (SIGKILL) at that epoch, mid-epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

NUM_EXAMPLES = 64
IMAGE_SHAPE = (16, 16, 3)


def make_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two separable classes of 16x16 images: bright vs dark."""
    rng = np.random.default_rng(seed)
    y = np.arange(NUM_EXAMPLES) % 2
    x = rng.uniform(0, 128, (NUM_EXAMPLES, *IMAGE_SHAPE)) + 100 * y[:, None, None, None]
    return x.astype("float32"), y.astype("int32")


def build_model(strategy, seed: int = 0):
    """A tiny two-conv base with its groups unfrozen, built inside ``strategy``."""
    import keras

    import tltf

    keras.utils.set_random_seed(seed)
    with tltf.strategy_scope(strategy):
        inputs = keras.Input(IMAGE_SHAPE)
        x = keras.layers.Conv2D(4, 3, activation="relu", name="conv1")(inputs)
        x = keras.layers.Conv2D(8, 3, activation="relu", name="conv2")(x)
        base = keras.Model(inputs, x, name="tiny_base")
        model = tltf.build_image_classifier(
            base,
            2,
            weights=None,
            preprocessing="unit",
            dropout=0.0,
            layer_groups={"block1": ["conv1"], "block2": ["conv2"]},
            compile=False,
            strategy=strategy,
        )
        tltf.unfreeze_backbone(model)
        tltf.compile_model(model, optimizer=keras.optimizers.SGD(0.05))
    return model


def weights_of(model) -> list[np.ndarray]:
    return [np.asarray(w) for w in model.get_weights()]


def run_mirrored(epochs: int) -> dict:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
    import tltf

    x, y = make_data()
    data = tf.data.Dataset.from_tensor_slices((x, y))
    single = build_model(tltf.get_strategy("cpu"))
    before = weights_of(single)
    single.fit(data.batch(8), epochs=epochs, verbose=0)

    strategy = tltf.get_strategy("mirrored", devices=["/cpu:0", "/cpu:1"])
    mirrored = build_model(strategy)
    start_diff = _max_diff(before, weights_of(mirrored))
    ds = tltf.distribute_dataset(data.batch(4), strategy, per_replica_batch_size=4)
    mirrored.fit(ds, epochs=epochs, verbose=0)
    return {
        "replicas": strategy.num_replicas_in_sync,
        "global_batch": int(next(iter(ds))[0].shape[0]),
        "start_diff": start_diff,
        "moved": _max_diff(before, weights_of(single)),
        "end_diff": _max_diff(weights_of(single), weights_of(mirrored)),
    }


class DieOnce:
    """Kills this process (SIGKILL) at ``epoch``, batch 2, unless ``marker`` exists."""

    def __new__(cls, epoch: int, marker: Path):
        import keras

        class _Die(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if self._epoch == epoch and batch == 2 and not marker.exists():
                    marker.write_text("died")
                    os.kill(os.getpid(), signal.SIGKILL)

            def on_epoch_begin(self, epoch_index, logs=None):
                self._epoch = epoch_index

        return _Die()


class StageState:
    """A stand-in schedule: its stage follows the epoch and is backed up."""

    def __init__(self) -> None:
        self.stage = 0
        self.restored: dict | None = None

    def backup_state(self) -> dict:
        return {"stage": self.stage}

    def restore_state(self, state: dict) -> None:
        self.restored = dict(state)
        self.stage = state["stage"]


def run_multiworker(args: argparse.Namespace) -> dict:
    import tltf

    strategy = tltf.get_strategy("multiworker")  # first: collectives need it
    import keras
    import tensorflow as tf

    keras.config.disable_traceback_filtering()
    x, y = make_data()
    model = build_model(strategy)
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    ds = tltf.distribute_dataset(ds, strategy, per_replica_batch_size=4)
    stage = StageState()

    class Follow(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            stage.stage = epoch + 1

    callbacks = [Follow()]
    callbacks += tltf.fault_tolerance_callbacks(args.backup, strategy, stateful=[stage])
    if args.die_at is not None:
        callbacks.append(DieOnce(args.die_at, Path(args.marker)))
    history = model.fit(ds, epochs=args.epochs, verbose=0, callbacks=callbacks)
    task = strategy.cluster_resolver.task_id
    np.savez(Path(args.out) / f"worker{task}.npz", *weights_of(model))
    return {
        "task": task,
        "replicas": strategy.num_replicas_in_sync,
        "epochs_run": len(history.history["loss"]),
        "loss": history.history["loss"],
        "restored": stage.restored,
        "final_stage": stage.stage,
    }


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(max(np.max(np.abs(u - v)) for u, v in zip(a, b)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["mirrored", "multiworker"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=".")
    parser.add_argument("--backup", default="backup")
    parser.add_argument("--die-at", type=int, default=None)
    parser.add_argument("--marker", default="died.marker")
    args = parser.parse_args()
    if args.mode == "mirrored":
        result = run_mirrored(args.epochs)
    else:
        result = run_multiworker(args)
    print("RESULT " + json.dumps(result), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
