"""Head layer: pooling, masking, shapes, config round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tltf
from tltf.heads import Head


def test_avg_and_max_pooling_over_spatial_positions():
    x = np.random.default_rng(0).normal(size=(2, 3, 3, 4)).astype("float32")
    np.testing.assert_allclose(
        Head(2, pooling="avg").pool(x), x.mean(axis=(1, 2)), rtol=1e-5
    )
    np.testing.assert_allclose(Head(2, pooling="max").pool(x), x.max(axis=(1, 2)))
    assert Head(2, pooling="flatten").pool(x).shape == (2, 36)


def test_mean_pooling_over_tokens_ignores_padding():
    x = np.arange(2 * 3 * 2, dtype="float32").reshape(2, 3, 2)
    mask = np.array([[1, 1, 0], [1, 0, 0]], bool)
    pooled = np.asarray(Head(2).pool(x, mask=mask))
    np.testing.assert_allclose(pooled[0], x[0, :2].mean(axis=0))
    np.testing.assert_allclose(pooled[1], x[1, 0])
    maxed = np.asarray(Head(2, pooling="max").pool(x, mask=mask))
    np.testing.assert_allclose(maxed[1], x[1, 0])


def test_head_outputs_per_task():
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    probs = np.asarray(Head(3, task="multiclass")(x))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    sig = np.asarray(Head(3, task="multilabel")(x))
    assert ((sig > 0) & (sig < 1)).all() and not np.allclose(sig.sum(axis=1), 1.0)
    assert Head(2, task="regression", hidden_units=(5, 4))(x).shape == (4, 2)


def test_output_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        head = Head(3, hidden_units=(4,))
        assert head(np.zeros((2, 8), "float16")).dtype == "float32"
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_config_round_trip():
    head = Head(4, task="multilabel", pooling="max", dropout=0.3, hidden_units=(16, 8))
    clone = Head.from_config(head.get_config())
    assert clone.get_config() == head.get_config()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_outputs": 3, "task": "ranking"}, "Unknown head task"),
        ({"num_outputs": 3, "pooling": "median"}, "Unknown pooling"),
        ({"num_outputs": 3, "dropout": 1.0}, "dropout"),
        ({"num_outputs": 1}, "num_classes >= 2"),
    ],
)
def test_bad_head_arguments(kwargs, match):
    with pytest.raises(tltf.ConfigError, match=match):
        Head(**kwargs)
