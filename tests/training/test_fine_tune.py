"""fine_tune: frozen head epochs (cached when safe), then unfrozen at fastai's rates."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import build_tiny_model, same, weights_of
from tltf.data.base import LoadedData
from tltf.training import recipes
from tltf.training.feature_cache import can_cache_features
from tltf.training.feature_cache.fit_head import AUTO_MAX_EPOCHS, AUTO_PATIENCE

X = np.random.default_rng(0).integers(0, 256, (8, 32, 32, 3)).astype("float32")
Y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
GROUPS = ("block1", "block2", "block3")


def _data() -> LoadedData:
    dataset = tf.data.Dataset.from_tensor_slices((X, Y)).batch(4)
    return LoadedData(dataset, dataset, ["a", "b", "c"], num_train=8, num_validation=8)


class BaseAtEpochEnd(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seen = []

    def on_epoch_end(self, epoch, logs=None):
        self.seen.append(weights_of(self.model.get_layer("backbone").model.layers))


def test_fine_tune_trains_head_frozen_then_everything_at_fastai_rates(monkeypatch):
    calls = []
    real = recipes.fit_frozen_head
    monkeypatch.setattr(
        recipes, "fit_frozen_head", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    model = build_tiny_model()
    backbone = model.get_layer("backbone")
    initial = weights_of(backbone.model.layers)
    bn_stats = [
        np.array(backbone.model.get_layer(f"{g}_bn").moving_mean) for g in GROUPS
    ]
    record = BaseAtEpochEnd()

    # freeze_epochs=1: one frozen epoch makes the fastai rates easy to check
    # (the default, "auto", is tested below).
    history = tltf.fine_tune(
        model,
        _data(),
        epochs=2,
        freeze_epochs=1,
        base_lr=1e-2,
        callbacks=[record],
        verbose=0,
    )

    assert calls == [1]  # the frozen epoch used feature caching
    assert history.epoch == [0, 1, 2] and len(history.history["val_loss"]) == 3
    assert history.history["stage"] == [0.0, 1.0, 1.0]
    assert same(initial, record.seen[0])  # base frozen in epoch 0
    assert not same(record.seen[0], record.seen[1])  # trains from epoch 1
    lrs = {k: history.history[f"lr_{k}"] for k in ("head", *GROUPS)}
    assert lrs["head"] == pytest.approx([1e-2, 5e-3, 5e-3])  # halved, as fastai
    assert lrs["block1"] == pytest.approx([0.0, 5e-5, 5e-5])  # base_lr / 2 / lr_mult
    assert lrs["block2"][1] == pytest.approx(5e-5 * 100 ** (1 / 3), rel=1e-5)
    assert lrs["block3"][1] == pytest.approx(5e-5 * 100 ** (2 / 3), rel=1e-5)
    assert tltf.trainable_groups(model) == list(GROUPS)
    after = [np.array(backbone.model.get_layer(f"{g}_bn").moving_mean) for g in GROUPS]
    assert same(bn_stats, after)  # BatchNorm stays in inference mode


def test_by_default_the_frozen_stage_trains_the_cached_head_until_it_converges():
    model = build_tiny_model()
    history = tltf.fine_tune(model, _data(), epochs=1, base_lr=1e-2, verbose=0)
    stages = history.history["stage"]
    frozen = stages.count(0.0)
    assert stages == [0.0] * frozen + [1.0]
    val = history.history["val_loss"][:frozen]
    if frozen < AUTO_MAX_EPOCHS:  # stopped: 3 epochs without gain
        best = int(np.argmin(val))
        assert frozen == best + 1 + AUTO_PATIENCE
    assert frozen > 1
    # Image models keep fastai's halving once unfrozen.
    assert history.history["lr_head"][-1] == pytest.approx(5e-3)


def test_text_models_fine_tune_at_transformer_rates(tmp_path):
    from tests.support.helpers import tiny_bert_preset

    texts = ["a good film", "great acting", "awful plot", "boring and dull"] * 2
    preset = tiny_bert_preset(tmp_path / "bert", texts)
    # sequence_length: the tiny encoder has 16 positions (the default is 128).
    model = tltf.build_text_classifier(f"kerashub:{preset}", 2, sequence_length=8)
    history = tltf.fine_tune(model, (texts, [1, 1, 0, 0] * 2), epochs=1, verbose=0)
    rates = history.history["lr_head"]
    assert rates[0] == pytest.approx(1e-3)  # the builder's rate, frozen
    assert rates[-1] == pytest.approx(1e-3 * recipes.TEXT_LR_DECAY)


def test_fine_tune_falls_back_to_plain_fit_when_caching_is_unsafe(monkeypatch):
    calls = []
    monkeypatch.setattr(recipes, "fit_frozen_head", lambda *a, **k: calls.append(1))
    model = build_tiny_model(augment=[keras.layers.RandomFlip(name="augment_flip")])
    assert not can_cache_features(model)
    history = tltf.fine_tune(model, (X, Y), epochs=1, verbose=0)
    assert calls == []
    assert history.history["stage"] == [0.0, 1.0]
    assert history.history["lr_head"] == pytest.approx([1e-3, 5e-4])


def test_fine_tune_schedules_are_counted_from_the_first_unfrozen_epoch():
    groups = build_tiny_model().backbone.group_names
    assert recipes._full_schedule(groups, "all", 2) == {0: "head", 2: "all"}
    assert recipes._full_schedule(groups, "gradual", 1) == {
        0: "head",
        1: "top:1",
        2: "top:2",
        3: "top:3",
    }
    assert recipes._full_schedule(groups, "gradual:2", 1) == {
        0: "head",
        1: "top:1",
        3: "top:2",
        5: "top:3",
    }
    assert recipes._full_schedule(groups, "plateau", 1) == "plateau"
    assert recipes._full_schedule(groups, {1: "all"}, 1) == {0: "head", 2: "all"}
    assert recipes._full_schedule(groups, "all", 0) == {0: "all"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"epochs": -1}, "epochs must be"),
        ({"epochs": 0, "freeze_epochs": 0}, ">= 1"),
        ({"epochs": 1, "lr_mult": 0.5}, "lr_mult"),
        ({"epochs": 1, "schedule": "sometimes"}, "schedule"),
        ({"epochs": 1, "schedule": "gradual:x"}, "preset"),
        ({"epochs": 1, "schedule": {0: "conv5"}}, "Unknown layer group"),
    ],
)
def test_fine_tune_rejects_bad_arguments_before_training(kwargs, message):
    model = build_tiny_model()
    before = weights_of(model.layers)
    with pytest.raises(tltf.ConfigError, match=message):
        tltf.fine_tune(model, (X, Y), verbose=0, **kwargs)
    assert same(before, weights_of(model.layers))


def test_fine_tune_needs_a_tltf_model():
    inputs = keras.Input((4,))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    with pytest.raises(tltf.ConfigError, match="Backbone"):
        tltf.fine_tune(plain, (np.zeros((2, 4)), np.zeros(2)), epochs=1)
