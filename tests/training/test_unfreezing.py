"""StagedUnfreezing: groups train exactly from their stage, at the scheduled rates."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, same, weights_of
from tltf.training.unfreezing.rates import GroupLearningRates

X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
GROUPS = ("block1", "block2", "block3")


def _group_weights(model: keras.Model) -> dict[str, list[np.ndarray]]:
    backbone = model.get_layer("backbone")
    found = {g: weights_of(backbone.group_layers(g)) for g in GROUPS}
    found["head"] = weights_of(model.get_layer("head"))
    return found


class Snapshots(keras.callbacks.Callback):
    """Weights of every group at each epoch start and after each epoch's first step."""

    def __init__(self) -> None:
        super().__init__()
        self.begin, self.first_step, self.rates = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.begin.append(_group_weights(self.model))

    def on_train_batch_begin(self, batch, logs=None):
        self.rates.append(np.array(self.model.optimizer.lr_multipliers))

    def on_train_batch_end(self, batch, logs=None):
        if batch == 0:
            self.first_step.append(_group_weights(self.model))


def _sgd_model(rate: float = 0.1) -> keras.Model:
    return _model(keras.optimizers.SGD(rate))


def _model(optimizer: keras.optimizers.Optimizer | None = None) -> keras.Model:
    """The tiny 3-group model, compiled without metrics (faster to trace)."""
    model = build_tiny_model(compile=False)
    optimizer = optimizer or keras.optimizers.Adam(1e-3)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def test_each_group_trains_exactly_from_its_stage_and_the_head_from_epoch_0(tiny_model):
    snaps = Snapshots()
    callback = tltf.StagedUnfreezing("gradual", verbose=0)  # block3, then 2, then 1
    history = tiny_model.fit(
        X,
        Y,
        batch_size=4,
        epochs=4,
        shuffle=False,
        callbacks=[callback, snaps],
        verbose=0,
    )
    final = _group_weights(tiny_model)
    ends = [*snaps.begin[1:], final]
    for epoch in range(4):
        training = {"head", *GROUPS[3 - epoch :]}
        for group in ("head", *GROUPS):
            first = snaps.first_step[epoch][group]
            moved_first_step = not same(snaps.begin[epoch][group], first)
            moved_in_epoch = not same(snaps.begin[epoch][group], ends[epoch][group])
            assert moved_first_step == moved_in_epoch == (group in training), (
                epoch,
                group,
            )
    assert history.history["stage"] == [0.0, 1.0, 2.0, 3.0]
    counts = history.history["trainable_params"]
    assert counts[0] == sum(int(np.prod(w.shape)) for w in final["head"])
    assert counts == sorted(counts) and counts[-1] > counts[0]


def test_learning_rate_seen_by_each_group_matches_the_schedule():
    model = _sgd_model(0.1)
    callback = tltf.StagedUnfreezing(
        {0: "head", 1: "top:1", 2: "all"},
        unfreeze_lr_factor=0.5,
        stage_lr_decay=0.5,
        discriminative=2.0,
        verbose=0,
    )
    expected = [  # 0.1 * 0.5**stage, and * 0.5 / 2**depth for base groups
        {"head": 0.1, "block1": 0, "block2": 0, "block3": 0},
        {"head": 0.05, "block1": 0, "block2": 0, "block3": 0.025},
        {"head": 0.025, "block1": 0.003125, "block2": 0.00625, "block3": 0.0125},
    ]
    backbone = model.get_layer("backbone")
    layers = {g: [backbone.model.get_layer(f"{g}_conv")] for g in GROUPS}
    layers["head"] = [model.get_layer("head")]
    seen = []

    class MeasureRates(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = {g: weights_of(ls) for g, ls in layers.items()}
            self.grads = _gradients(model, layers)

        def on_epoch_end(self, epoch, logs=None):
            after = {g: weights_of(ls) for g, ls in layers.items()}
            seen.append(
                {g: _rate(self.before[g], after[g], self.grads[g]) for g in layers}
            )

    history = model.fit(
        X, Y, batch_size=8, epochs=3, callbacks=[callback, MeasureRates()], verbose=0
    )
    for epoch, rates in enumerate(expected):
        for group, rate in rates.items():
            assert seen[epoch][group] == pytest.approx(rate, rel=1e-3), (epoch, group)
            assert history.history[f"lr_{group}"][epoch] == pytest.approx(
                rate, rel=1e-6
            )


def _gradients(model, layers):
    variables = {
        g: [v for layer in ls for v in layer.weights] for g, ls in layers.items()
    }
    flat = [v.value for vs in variables.values() for v in vs]
    with tf.GradientTape() as tape:
        tape.watch(flat)
        loss = keras.losses.sparse_categorical_crossentropy(Y, model(X, training=True))
        loss = tf.reduce_mean(loss)
    grads = iter(tape.gradient(loss, flat))
    return {g: [np.array(next(grads)) for _ in vs] for g, vs in variables.items()}


def _rate(before, after, grads) -> float:
    """The SGD step size that turned ``before`` into ``after`` (0 if unchanged)."""
    steps = np.concatenate([(b - a).ravel() for b, a in zip(before, after)])
    grad = np.concatenate([g.ravel() for g in grads])
    mask = np.abs(grad) > 1e-4 * np.abs(grad).max()
    return float(np.median(steps[mask] / grad[mask]))


def test_batchnorm_statistics_frozen_unless_train_bn():
    def run(train_bn):
        model = _model()
        bns = {
            g: model.get_layer("backbone").model.get_layer(f"{g}_bn") for g in GROUPS
        }
        stats = []

        class Stats(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                stats.append(
                    {
                        g: [np.array(bn.moving_mean), np.array(bn.moving_variance)]
                        for g, bn in bns.items()
                    }
                )

        before = {
            g: [np.array(bn.moving_mean), np.array(bn.moving_variance)]
            for g, bn in bns.items()
        }
        gamma = np.array(bns["block3"].gamma)
        callback = tltf.StagedUnfreezing(
            {0: "head", 1: "top:1"}, train_bn=train_bn, verbose=0
        )
        model.fit(
            X, Y, batch_size=4, epochs=2, callbacks=[callback, Stats()], verbose=0
        )
        assert not np.array_equal(
            gamma, np.array(bns["block3"].gamma)
        )  # block3 trained
        return model, before, stats

    model, before, stats = run(train_bn=None)
    assert model.get_layer("backbone").train_bn is False
    for epoch in range(2):
        assert all(same(before[g], stats[epoch][g]) for g in GROUPS)

    model, before, stats = run(train_bn=True)
    assert model.get_layer("backbone").train_bn is True
    assert all(same(before[g], stats[0][g]) for g in GROUPS)  # frozen stage
    assert not same(before["block3"], stats[1]["block3"])  # unfrozen, train_bn
    assert same(before["block1"], stats[1]["block1"])  # still frozen


class Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch: int) -> None:
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("interrupted")


@pytest.mark.parametrize(
    "schedule, options, backup_first, block1_rates",
    [
        (
            {0: "head", 1: "top:1", 3: "all"},
            {"discriminative": 2.0},
            False,
            [0, 2.5e-5],
        ),
        # Nothing counts as improvement after epoch 0: a stage per epoch from 2.
        ("plateau", {"patience": 1, "min_delta": 1e9}, True, [0.0, 0.0]),
    ],
)
def test_interrupted_run_resumes_in_the_right_stage_with_the_same_result(
    tmp_path, schedule, options, backup_first, block1_rates
):
    initial = _model().get_weights()
    resumed_at = []

    class Iterations(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            resumed_at.append((epoch, int(self.model.optimizer.iterations)))

    def fresh() -> keras.Model:
        model = _model()
        model.set_weights(initial)
        return model

    def fit(model, extra):
        callbacks = [tltf.StagedUnfreezing(schedule, verbose=0, **options)]
        # A plateau decision must reach the backup whatever the order.
        callbacks = (
            [*extra[:1], *callbacks, *extra[1:]]
            if backup_first
            else [
                *callbacks,
                *extra,
            ]
        )
        return model.fit(
            X,
            Y,
            batch_size=4,
            epochs=4,
            shuffle=False,
            validation_data=(X, Y) if schedule == "plateau" else None,
            callbacks=callbacks,
            verbose=0,
        )

    reference = fresh()
    fit(reference, [])
    backup = str(tmp_path / "backup")
    with pytest.raises(RuntimeError, match="interrupted"):
        fit(fresh(), [keras.callbacks.BackupAndRestore(backup), Interrupt(at_epoch=2)])
    resumed = fresh()
    history = fit(resumed, [keras.callbacks.BackupAndRestore(backup), Iterations()])
    assert resumed_at[0] == (2, 4)  # optimizer state restored: 2 epochs x 2 steps
    assert history.history["stage"] == [1.0, 2.0]  # epochs 2, 3
    assert history.history["lr_block1"] == pytest.approx(block1_rates)
    for ours, theirs in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)
    assert int(resumed.optimizer.iterations) == int(reference.optimizer.iterations) == 8


def test_keras_file_mid_schedule_reloads_predictions_and_optimizer_state(tmp_path):
    model = _model()
    callback = tltf.StagedUnfreezing(
        {0: "head", 1: "top:1", 2: "all"},
        stage_lr_decay=[1.0, 0.5],
        log_dir=str(tmp_path / "logs"),
        verbose=0,
    )
    model.fit(X, Y, batch_size=4, epochs=2, callbacks=[callback], verbose=0)
    tags = {}  # stage changes were written for TensorBoard
    for event_file in (tmp_path / "logs").glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    assert tags["unfreezing/stage"] == [0, 1]
    assert "unfreezing/lr_block3" in tags and "unfreezing/trainable_params" in tags

    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6
    )
    assert isinstance(loaded.optimizer, GroupLearningRates)

    again = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert again.get_config() == callback.get_config()
    loaded.fit(
        X, Y, batch_size=4, epochs=3, initial_epoch=2, callbacks=[again], verbose=0
    )
    # State saved mid-schedule was restored once rebuilt on all variables:
    # 4 steps before the save + 2 after, not 2.
    assert int(loaded.optimizer.iterations) == 6
    assert tltf.trainable_groups(loaded) == list(GROUPS)


def test_warmup_ramps_newly_unfrozen_groups_only():
    model = _sgd_model()
    snaps = Snapshots()
    callback = tltf.StagedUnfreezing({0: "head", 1: "top:1"}, warmup_steps=2, verbose=0)
    model.fit(X, Y, batch_size=2, epochs=2, callbacks=[callback, snaps], verbose=0)
    paths = model.optimizer.built_paths
    block3 = paths.index(
        model.get_layer("backbone").model.get_layer("block3_conv").kernel.path
    )
    head = next(i for i, p in enumerate(paths) if p.startswith("head"))
    rates = np.array(snaps.rates)  # 4 steps per epoch
    np.testing.assert_allclose(rates[4:, block3], [0.05, 0.1, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(rates[:, head], 1.0)


def test_plateau_unfreezes_the_next_group_after_patience_epochs():
    scores = iter([1.0, 0.9, 0.95, 0.96, 0.5])

    class Score(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["score"] = next(scores)

    callback = tltf.StagedUnfreezing("plateau", monitor="score", patience=1, verbose=0)
    history = _model().fit(
        X, Y, batch_size=8, epochs=5, callbacks=[Score(), callback], verbose=0
    )
    assert history.history["stage"] == [0.0, 0.0, 0.0, 1.0, 2.0]


def test_mixed_float16_loss_scale_optimizer_is_kept_around_grouped_rates():
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_tiny_model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = _group_weights(model)
    callback = tltf.StagedUnfreezing({0: "head", 1: "top:1"}, verbose=0)
    model.fit(X, Y, batch_size=8, epochs=2, callbacks=[callback], verbose=0)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.optimizer.inner_optimizer, GroupLearningRates)
    after = _group_weights(model)
    assert not same(before["block3"], after["block3"])
    assert same(before["block2"], after["block2"])


def test_works_inside_a_mirrored_strategy_scope():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _model()
    before = _group_weights(model)
    callback = tltf.StagedUnfreezing({0: "head", 1: "top:1"}, verbose=0)
    model.fit(X, Y, batch_size=4, epochs=2, callbacks=[callback], verbose=0)
    after = _group_weights(model)
    assert not same(before["block3"], after["block3"])
    assert same(before["block1"], after["block1"])


@pytest.mark.parametrize(
    "schedule, message",
    [
        ({0: "head", 2: "conv5_block1"}, "Unknown layer group"),  # another backbone's
        ({0: "head", 1: "top:4"}, "has 3"),
        ({0: "all", 1: "top:1"}, "freeze again"),
    ],
)
def test_schedule_that_does_not_fit_the_backbone_fails_before_training(
    tiny_model, schedule, message
):
    before = _group_weights(tiny_model)
    callback = tltf.StagedUnfreezing(schedule)
    with pytest.raises(tltf.ConfigError, match=message):
        tiny_model.fit(X, Y, epochs=1, callbacks=[callback], verbose=0)
    assert all(same(before[k], w) for k, w in _group_weights(tiny_model).items())


@pytest.mark.parametrize(
    "schedule, message",
    [
        ([(2, "top:1"), (1, "all")], "strictly increasing"),
        ({0: "head", -1: "all"}, "non-negative"),
        ({0: "top:0"}, "stage spec"),
        ("sometimes", "Unknown unfreezing schedule preset"),
        ({}, "empty"),
    ],
)
def test_malformed_schedule_fails_at_construction(schedule, message):
    with pytest.raises(tltf.ConfigError, match=message):
        tltf.StagedUnfreezing(schedule)


def test_bad_rates_and_uncompiled_model_fail_clearly():
    with pytest.raises(tltf.ConfigError, match="discriminative"):
        tltf.StagedUnfreezing(discriminative=(1e-3, 1e-5))
    with pytest.raises(tltf.ConfigError, match="positive"):
        tltf.StagedUnfreezing(unfreeze_lr_factor=0)
    with pytest.raises(tltf.ConfigError, match="stage_lr_decay"):
        tltf.StagedUnfreezing(stage_lr_decay=[])
    model = build_tiny_model(compile=False)
    with pytest.raises(tltf.ConfigError, match="compiled"):
        tltf.StagedUnfreezing().set_model(model)


_TWO_REPLICAS = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2
)
import keras, numpy as np
import tltf
from tests.support.helpers import build_tiny_model
X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
def run(model):
    callback = tltf.StagedUnfreezing(
        {0: "head", 1: "top:1", 2: "all"}, discriminative=2.0, verbose=0
    )
    model.fit(X, Y, batch_size=4, epochs=3, shuffle=False, callbacks=[callback],
              verbose=0)
    return model.get_weights()
keras.utils.set_random_seed(0)
single = build_tiny_model()
initial = single.get_weights()
expected = run(single)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
with strategy.scope():
    mirrored = build_tiny_model()
mirrored.set_weights(initial)
got = run(mirrored)
print(max(float(np.max(np.abs(a - b))) for a, b in zip(expected, got)))
print(max(float(np.max(np.abs(a - b))) for a, b in zip(expected, initial)))
"""


@pytest.mark.slow
def test_two_replica_mirrored_run_matches_a_single_device_run():
    """Needs its own process: logical devices must be set before TF starts."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    result = subprocess.run(
        [sys.executable, "-c", _TWO_REPLICAS],
        capture_output=True,
        text=True,
        cwd=root,
        env=env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    difference, moved = (float(v) for v in result.stdout.split()[-2:])
    assert moved > 1e-3  # training changed the weights ...
    assert difference < 1e-6  # ... identically on 1 and on 2 replicas
