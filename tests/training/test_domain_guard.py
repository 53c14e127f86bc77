"""`CollapseGuard`: a collapsed adaptation stops, keeps its best epoch, says so."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

import tltf
from tests.support.helpers import same
from tests.training.test_domain import moons, moons_classifier
from tltf.training.domain.guard import CollapseGuard, chance_loss
from tltf.training.domain.step import feature_spread

LN2 = math.log(2.0)


def guarded(chance: float | None = LN2) -> tuple[CollapseGuard, keras.Model]:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    guard = CollapseGuard(weight=5.0, chance=chance)
    guard.set_model(model)
    guard.on_train_begin()
    return guard, model


def epoch_end(guard, model, epoch, spread, task):
    """Ends an epoch whose training moved every weight (to tell epochs apart)."""
    model.set_weights([w + 1.0 for w in model.get_weights()])
    guard.on_epoch_end(epoch, {"feature_spread": spread, "task_loss": task})
    return model.get_weights()


def test_feature_spread_is_the_varying_share_of_the_features_at_any_scale():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(16, 5)).astype("float32") + 3.0
    centred = features - features.mean(axis=0)
    expected = np.mean(np.sum(centred**2, -1)) / np.mean(np.sum(features**2, -1))
    np.testing.assert_allclose(feature_spread(features), expected, rtol=1e-5)
    np.testing.assert_allclose(feature_spread(1e-3 * features), expected, rtol=1e-4)
    alike = np.repeat(features[:1], 16, axis=0)
    assert float(feature_spread(alike)) == pytest.approx(0.0, abs=1e-6)
    assert float(feature_spread(np.zeros((16, 5), "float32"))) == 0.0  # dead units


def test_a_chance_loss_is_a_uniform_guess():
    assert chance_loss("multiclass", 10) == pytest.approx(math.log(10))
    assert chance_loss("multilabel", 4) == pytest.approx(LN2)
    assert chance_loss("regression", 1) is None


def test_features_that_shrink_but_stay_apart_are_left_alone():
    guard, model = guarded()
    # MMD shrinks the features it aligns: 1/12 of their largest spread on
    # the two-moons test while the task kept learning.
    for epoch, (spread, task) in enumerate([(0.74, 0.5), (0.2, 0.3), (0.06, 0.08)]):
        weights = epoch_end(guard, model, epoch, spread, task)
    assert not getattr(model, "stop_training", False)
    assert guard.collapsed_epoch is None
    assert same(model.get_weights(), weights)


def test_collapsed_features_stop_training_and_bring_back_the_best_epoch():
    guard, model = guarded()
    kept = epoch_end(guard, model, 0, 8.7, 0.9)
    best = epoch_end(guard, model, 1, 20.2, 0.6)  # the lowest task loss
    epoch_end(guard, model, 2, 5.5, 0.8)

    with pytest.warns(UserWarning, match=r"epoch 4: the aligned features") as caught:
        epoch_end(guard, model, 3, 3e-5, 0.7)

    assert model.stop_training
    assert (guard.collapsed_epoch, guard.restored_epoch) == (3, 1)
    assert same(model.get_weights(), best)
    assert not same(model.get_weights(), kept)
    message = str(caught[0].message)
    assert "weights of epoch 2" in message and "weight=5" in message


def test_a_task_back_at_chance_stops_training_though_the_features_differ():
    guard, model = guarded()
    best = epoch_end(guard, model, 0, 1.0, 0.2)
    epoch_end(guard, model, 1, 1.0, 0.4)
    with pytest.warns(UserWarning, match="task loss is back at a guess"):
        epoch_end(guard, model, 2, 1.0, 0.97 * LN2)
    assert guard.restored_epoch == 0
    assert same(model.get_weights(), best)


def test_a_task_that_never_learnt_is_not_called_a_collapse():
    # A hard task whose loss stays near a guess's is not the guard's to stop.
    guard, model = guarded()
    for epoch, share in enumerate([0.99, 0.8, 0.97]):
        epoch_end(guard, model, epoch, 1.0, share * LN2)
    assert guard.collapsed_epoch is None
    guarded_features_only, model = guarded(chance=None)
    epoch_end(guarded_features_only, model, 0, 1.0, 0.1)
    epoch_end(guarded_features_only, model, 1, 1.0, 5.0)
    assert guarded_features_only.collapsed_epoch is None


def test_a_first_epoch_that_diverged_is_reported_with_nothing_to_restore():
    guard, model = guarded()
    with pytest.warns(UserWarning, match="no earlier epoch was healthy"):
        ended = epoch_end(guard, model, 0, math.nan, math.nan)
    assert guard.restored_epoch is None
    assert same(model.get_weights(), ended)


class Snapshots(keras.callbacks.Callback):
    """The model's weights at every epoch's end."""

    def on_train_begin(self, logs=None):
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def test_adapt_domain_stops_a_collapse_and_returns_its_best_epoch():
    # An MMD weight far too large for two-moons features: they shrink to
    # one point within a few epochs and the task loss climbs to ln 2.
    keras.utils.set_random_seed(0)
    model = moons_classifier()
    (xs, ys), (xt, _) = moons(256, 0), moons(256, 1, 35.0)
    snapshots = Snapshots()

    with pytest.warns(UserWarning, match="adapt_domain stopped after epoch"):
        tltf.adapt_domain(
            model, (xs, ys), xt, method="mmd", weight=30.0, epochs=20,
            batch_size=32, callbacks=[snapshots], check=False, verbose=0,
        )  # fmt: skip

    logs = model.history.history
    ran = len(logs["loss"])
    assert ran < 20  # Stopped early...
    spreads = np.array(logs["feature_spread"])
    assert spreads[-1] <= 1e-3 * spreads[:-1].max()  # ...because they collapsed...
    best = int(np.argmin(logs["task_loss"][:-1]))
    restored = snapshots.weights[best]  # ...with its best epoch's weights back.
    assert same(model.get_weights(), restored)


def test_a_healthy_adaptation_runs_every_epoch_and_logs_the_spread(recwarn):
    keras.utils.set_random_seed(0)
    model = moons_classifier()
    (xs, ys), (xt, _) = moons(128, 0), moons(128, 1, 35.0)
    tltf.adapt_domain(model, (xs, ys), xt, epochs=3, batch_size=32, verbose=0)
    logs = model.history.history
    assert len(logs["feature_spread"]) == 3
    assert all(s > 0 for s in logs["feature_spread"])
    assert not [w for w in recwarn if "adapt_domain stopped" in str(w.message)]
