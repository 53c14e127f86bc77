"""tltf.training.fitting: the shared plain fit and history merging."""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from tests.support.helpers import build_tiny_model
from tltf.training.fitting import fit_data, merge_histories


def _history(logs: dict) -> keras.callbacks.History:
    history = keras.callbacks.History()
    history.history = logs
    history.epoch = list(range(len(next(iter(logs.values())))))
    return history


def test_merge_aligns_keys_a_stage_did_not_log():
    head = _history({"loss": [3.0, 2.0]})
    full = _history({"loss": [1.0], "stage": [1.0]})

    merged = merge_histories([head, full])

    assert merged.epoch == [0, 1, 2]
    assert merged.history["loss"] == [3.0, 2.0, 1.0]
    assert [math.isnan(v) for v in merged.history["stage"]] == [True, True, False]


def test_fit_data_takes_arrays_with_sample_weights_and_datasets():
    model = build_tiny_model()
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = np.arange(8) % 3
    zero = np.zeros(8, "float32")
    before = model.get_weights()

    def unchanged() -> bool:
        return all(np.array_equal(a, w) for a, w in zip(before, model.get_weights()))

    # All-zero sample weights: no gradient, so nothing may change.
    fit_data(model, (x, y, zero), epochs=1, verbose=0)
    assert unchanged()

    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    history = fit_data(model, ds, ds, initial_epoch=1, epochs=3, verbose=0)
    assert history.epoch == [1, 2]
    assert "val_loss" in history.history
    assert not unchanged()
