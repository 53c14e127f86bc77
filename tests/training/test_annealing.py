"""CosineAnnealing: the rate of each step, unknown lengths, schedules, fine_tune."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model
from tltf.errors import ConfigError
from tltf.training.unfreezing.annealing import CosineAnnealing

X = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
Y = np.arange(16) % 2


class RateAtStep(keras.callbacks.Callback):
    """The optimizer's rate at every step taken (read when the step ends: with
    data of unknown length Keras begins one more step that finds no data)."""

    def __init__(self) -> None:
        super().__init__()
        self.rates: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        rate = keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)
        self.rates.append(float(rate))


def _dense(learning_rate=0.1) -> keras.Model:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(
        keras.optimizers.SGD(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _cosine(step: int, total: int) -> float:
    return 0.5 * (1 + math.cos(math.pi * step / total))


def test_steps_after_the_start_follow_a_half_cosine_to_zero_and_the_rate_comes_back():
    model, rates = _dense(), RateAtStep()
    history = model.fit(
        X,
        Y,
        batch_size=4,  # 4 steps per epoch
        epochs=3,
        callbacks=[CosineAnnealing(2, start_epoch=1), rates],
        verbose=0,
    )
    expected = [0.1] * 4 + [0.1 * _cosine(s, 8) for s in range(8)]
    assert rates.rates == pytest.approx(expected, rel=1e-5)
    assert rates.rates[-1] < 0.01  # the last step is nearly at rest
    assert history.history["lr_factor"] == pytest.approx([_cosine(3, 8), _cosine(7, 8)])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.1)


def test_a_dataset_of_unknown_length_anneals_by_epoch_until_its_steps_are_counted():
    data = tf.data.Dataset.from_tensor_slices((X, Y)).filter(lambda x, y: True)
    assert data.cardinality() == tf.data.UNKNOWN_CARDINALITY
    model, rates = _dense(), RateAtStep()
    model.fit(data.batch(4), epochs=2, callbacks=[CosineAnnealing(2), rates], verbose=0)
    first, second = rates.rates[:4], rates.rates[4:]
    assert first == pytest.approx([0.1] * 4)  # progress 0 all epoch
    assert second == pytest.approx([0.1 * _cosine(4 + s, 8) for s in range(4)])


def test_an_optimizer_with_a_rate_schedule_keeps_its_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 4, 0.5)
    model, rates = _dense(schedule), RateAtStep()
    model.fit(
        X, Y, batch_size=4, epochs=2, callbacks=[CosineAnnealing(2), rates], verbose=0
    )
    # Read after each step, so at the next step's count.
    assert rates.rates == pytest.approx([0.1 * 0.5 ** (s / 4) for s in range(1, 9)])


@pytest.mark.parametrize("kwargs", [{"epochs": -1}, {"epochs": 2, "start_epoch": 1.5}])
def test_bad_counts_are_refused(kwargs):
    with pytest.raises(ConfigError, match="integer >= 0"):
        CosineAnnealing(**kwargs)


def test_config_round_trips():
    callback = CosineAnnealing(3, start_epoch=2)
    copy = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(callback)
    )
    assert isinstance(copy, CosineAnnealing)
    assert (copy.epochs, copy.start_epoch) == (3, 2)


def test_fine_tune_anneals_its_unfrozen_epochs_by_default():
    model, rates = build_tiny_model(), RateAtStep()
    data = tf.data.Dataset.from_tensor_slices(
        (np.zeros((8, 32, 32, 3), "float32"), np.arange(8) % 3)
    ).batch(4)
    history = tltf.fine_tune(
        model, data, epochs=2, freeze_epochs=1, callbacks=[rates], verbose=0
    )
    # The optimizer's own rate (the builder's 1e-3) anneals; fastai's halving
    # and the per-group ratios are multipliers on top of it.
    assert rates.rates[-4:] == pytest.approx([1e-3 * _cosine(s, 4) for s in range(4)])
    assert history.history["lr_head"] == pytest.approx([1e-3, 5e-4, 5e-4])
    assert history.history["lr_factor"][-2:] == pytest.approx(
        [_cosine(1, 4), _cosine(3, 4)]
    )
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)


def test_fine_tune_anneal_false_keeps_the_rates_constant():
    model, rates = build_tiny_model(), RateAtStep()
    data = tf.data.Dataset.from_tensor_slices(
        (np.zeros((8, 32, 32, 3), "float32"), np.arange(8) % 3)
    ).batch(4)
    tltf.fine_tune(
        model,
        data,
        epochs=2,
        freeze_epochs=1,
        anneal=False,
        callbacks=[rates],
        verbose=0,
    )
    assert rates.rates[-4:] == pytest.approx([1e-3] * 4)
