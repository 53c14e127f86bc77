"""Learning-rate search: a known answer, feature reuse, resuming, every oracle."""

from __future__ import annotations

import keras
import keras_tuner as kt
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tltf.data.base import LoadedData
from tltf.training.tuning import TransferHyperModel, make_oracle

GROUPS = {"block1": ["dense1"], "block2": ["dense2", "count"]}
TRAIN_BATCHES, VAL_BATCHES = 16, 8  # 64 and 32 examples in batches of 4.
BASE_CALLS = tf.Variable(0, dtype="int64", trainable=False)
TRIALS_RUN: list[int] = []


class CountCalls(keras.layers.Layer):
    """Identity that counts the batches the base really runs on."""

    def call(self, inputs):
        BASE_CALLS.assign_add(1)
        return inputs


def dense_base() -> keras.Model:
    """A two-layer per-pixel dense base; its second group counts its calls."""
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Dense(3, kernel_initializer="identity", name="dense1")(inputs)
    x = keras.layers.Dense(3, kernel_initializer="identity", name="dense2")(x)
    return keras.Model(inputs, CountCalls(name="count")(x), name="dense_base")


def color_task() -> LoadedData:
    """Three colour classes: 64 training and 32 validation images of 32x32."""
    rng = np.random.default_rng(0)
    labels = np.arange(96) % 3
    pixels = np.zeros((96, 32, 32, 3), "float32")
    pixels[np.arange(96), ..., labels] = 200.0
    pixels = np.clip(pixels + rng.normal(0, 30, pixels.shape), 0, 255).astype("uint8")
    train = tf.data.Dataset.from_tensor_slices((pixels[:64], labels[:64]))
    val = tf.data.Dataset.from_tensor_slices((pixels[64:], labels[64:]))
    return LoadedData(
        train.shuffle(64, seed=0).batch(4), val.batch(4), ["red", "green", "blue"]
    )


def search(directory, base=None, **kwargs) -> tltf.TuningResult:
    """A tiny search on the colour task; ``kwargs`` override the defaults."""
    args = dict(
        preprocessing="unit",
        layer_groups=GROUPS,
        oracle="random",
        max_trials=2,
        epochs=4,
        directory=directory,
        seed=1,
        verbose=0,
        callbacks=[keras.callbacks.LambdaCallback(on_train_begin=_trial_ran)],
    )
    args.update(kwargs)
    return tltf.tune_learning_rate(base or dense_base(), color_task(), **args)


def _trial_ran(logs=None) -> None:
    TRIALS_RUN.append(1)


@pytest.fixture(scope="module")
def known_answer(tmp_path_factory):
    """A search between 1e-7 (cannot learn in 64 steps) and 1e-2 (can)."""
    keras.utils.set_random_seed(1234)
    BASE_CALLS.assign(0)
    directory = tmp_path_factory.mktemp("known")
    result = search(directory, head_learning_rate=[1e-7, 1e-2])
    return result, int(BASE_CALLS.numpy())


def test_search_ranks_the_workable_rate_first(known_answer):
    result, _ = known_answer
    assert result.objective == "val_accuracy" and result.direction == "max"
    assert result.best_learning_rate == pytest.approx(1e-2)
    assert [t.hyperparameters["head_learning_rate"] for t in result.trials] == [
        pytest.approx(1e-2),
        pytest.approx(1e-7),
    ]
    good, bad = result.trials
    assert good.status == bad.status == "COMPLETED"
    assert good.score > bad.score + 0.2 and bad.score < 0.5
    table = result.summary()
    assert "1.00e-07" in table and "0.01" in table and "COMPLETED" in table


def test_base_runs_once_per_search_not_once_per_trial(known_answer):
    result, calls = known_answer
    once = TRAIN_BATCHES + VAL_BATCHES
    assert calls == once  # 2 trials x 4 epochs would be 8 passes.
    assert result.base_batches == once
    assert result.base_batches_without_reuse == 2 * 4 * once
    assert f"{once} batches (without feature reuse: {8 * once}; 88% saved)" in str(
        result
    )


def test_best_model_has_the_trained_head_and_the_shared_base(known_answer):
    result, _ = known_answer
    model = result.best_model
    assert result.best_model_weights == "trained"
    assert tltf.trainable_groups(model) == []  # Base frozen, ready to fine-tune.
    saved = np.load(result.project_dir / "shared_base.npz")
    base = model.backbone.model
    assert all(
        np.array_equal(saved[f"arr_{i}"], w) for i, w in enumerate(base.get_weights())
    )
    _, val = color_task().train, color_task().validation
    scores = model.evaluate(val, verbose=0, return_dict=True)
    assert scores["accuracy"] == pytest.approx(result.trials[0].score)
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)


def test_resumed_search_does_not_rerun_finished_trials(tmp_path):
    TRIALS_RUN.clear()
    first = search(tmp_path, max_trials=2, epochs=1)
    assert len(TRIALS_RUN) == 2 and first.new_trials == 2
    scores = {t.trial_id: t.score for t in first.trials}

    again = search(tmp_path, max_trials=3, epochs=1)

    assert len(TRIALS_RUN) == 3  # Only the one new trial ran.
    assert again.new_trials == 1 and len(again.trials) == 3
    assert {t.trial_id: t.score for t in again.trials if t.trial_id in scores} == (
        scores
    )
    # The resumed run reused the first run's base weights (weights=None would
    # otherwise give a new random base).
    saved = np.load(tmp_path / "learning_rate" / "shared_base.npz")
    base = again.best_model.backbone.model
    assert np.array_equal(saved["arr_0"], base.get_weights()[0])
    # Resuming with another base fails clearly, before any trial runs.
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Dense(5, name="dense1")(inputs)
    other = keras.Model(inputs, keras.layers.Dense(3, name="dense2")(x))
    with pytest.raises(tltf.ConfigError, match="same backbone"):
        search(tmp_path, other, layer_groups=None, max_trials=4, epochs=1)
    assert len(TRIALS_RUN) == 3
    # Resuming on other data fails clearly too: its finished trials are stale.
    task = color_task()
    fewer = LoadedData(task.train.take(8), task.validation, task.class_names)
    args = dict(preprocessing="unit", layer_groups=GROUPS, oracle="random", seed=1)
    with pytest.raises(tltf.ConfigError, match=r"run on other data \(its train"):
        tltf.tune_learning_rate(
            dense_base(), fewer, directory=tmp_path, max_trials=4, epochs=1, **args
        )
    assert len(TRIALS_RUN) == 3


@pytest.mark.parametrize("oracle,epochs", [("bayesian", 1), ("hyperband", 2)])
def test_other_oracles_run(tmp_path, oracle, epochs):
    result = search(tmp_path, oracle=oracle, max_trials=2, epochs=epochs)
    assert 1 <= len(result.trials) <= 2
    assert all(t.status == "COMPLETED" for t in result.trials)
    assert 1e-5 <= result.best_learning_rate <= 1e-1
    assert result.best_model_weights == "trained"


def test_hyperband_warm_start_loads_the_earlier_trial(known_answer):
    result, _ = known_answer
    tuner, best = result.tuner, result.trials[0]
    hp = tuner.oracle.get_trial(best.trial_id).hyperparameters.copy()
    fresh = tuner._build_hypermodel(hp)
    hp.values["tuner/trial_id"] = best.trial_id  # What Hyperband's oracle sets.
    warm = tuner._build_hypermodel(hp)
    expected = result.best_model.head.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(warm.head.get_weights(), expected))
    assert not np.array_equal(fresh.head.get_weights()[0], expected[0])


def test_fine_tuning_stage_searches_its_rate_and_runs_the_base(tmp_path):
    BASE_CALLS.assign(0)
    result = search(
        tmp_path,
        max_trials=1,
        epochs=1,
        fine_tune_epochs=1,
        fine_tune_learning_rate=(1e-5, 1e-3),
        unfreeze_groups=(1, 2),
        dropout=(0.0, 0.3),
        weight_decay=(1e-5, 1e-3),
    )
    best = result.best_hyperparameters
    assert set(best) == {
        "head_learning_rate",
        "weight_decay",
        "dropout",
        "fine_tune_learning_rate",
        "unfreeze_groups",
    }
    assert 1e-5 <= best["fine_tune_learning_rate"] <= 1e-3
    assert best["unfreeze_groups"] in (1, 2)
    once = TRAIN_BATCHES + VAL_BATCHES
    # Features once for the head epoch, then the whole model for one epoch.
    assert int(BASE_CALLS.numpy()) == result.base_batches == 2 * once
    assert result.base_batches_without_reuse == 2 * once


def test_trials_run_under_a_distribution_strategy(tmp_path):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():  # A user's base must be made in the strategy.
        base = dense_base()
    result = search(
        tmp_path, base, max_trials=1, epochs=1, distribution_strategy=strategy
    )
    assert result.trials[0].status == "COMPLETED"
    assert result.best_model.distribute_strategy is strategy
    assert result.best_model_weights == "trained"


def test_hypermodel_build_only_picks_arguments():
    hypermodel = TransferHyperModel(
        dense_base(),
        3,
        preprocessing="unit",
        layer_groups=GROUPS,
        head_learning_rate=(1e-4, 1e-2),
        dropout=[0.0, 0.5],
    )
    hp = kt.HyperParameters()
    first = hypermodel.build(hp)
    hp.values["dropout"] = 0.5
    second = hypermodel.build(hp)
    assert tltf.Head in {type(layer) for layer in second.layers}
    assert second.head.dropout == 0.5
    assert first.head.dropout == 0.0
    shared = first.backbone.model.get_weights()
    again = second.backbone.model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(shared, again))
    assert hypermodel.task == "multiclass"


def test_objective_defaults_and_bad_arguments(tmp_path):
    assert tltf.training.tuning.default_objective("multiclass", True).name == (
        "val_accuracy"
    )
    assert tltf.training.tuning.default_objective("regression", True).name == (
        "val_loss"
    )
    assert tltf.training.tuning.default_objective("multiclass", False).name == "loss"
    with pytest.raises(tltf.ConfigError, match="Unknown oracle"):
        make_oracle("grid-ish", objective="loss", max_trials=1, max_epochs=1)
    with pytest.raises(tltf.ConfigError, match="fine_tune_learning_rate"):
        search(tmp_path, fine_tune_epochs=2)
    # A split of a LoadedData names its classes; any other dataset does not.
    plain = color_task().train.map(lambda x, y: (x, y))
    with pytest.raises(tltf.ConfigError, match="num_classes"):
        tltf.tune_learning_rate(dense_base(), plain)
    with pytest.raises(tltf.DataError, match="num_classes=5 but the data has 3"):
        tltf.tune_learning_rate(dense_base(), color_task().train, num_classes=5)
    with pytest.raises(tltf.ConfigError, match="head_learning_rate"):
        search(tmp_path, head_learning_rate=(1e-2, 1e-4))
