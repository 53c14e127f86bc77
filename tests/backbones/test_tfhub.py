"""TF Hub modules as Keras 3 layers: weights, freezing, saving, export, strategy."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.savedmodels import (
    FEATURES,
    REG_SCALE,
    save_bert_encoder,
    save_bert_preprocess,
    save_image_module,
)
from tltf.backbones import hub_handles, tfhub
from tltf.backbones.tfhub import HubLayer
from tltf.errors import ConfigError, MissingWeightsError

TEXTS = ["a good film", "a bad film", "good good", "bad bad", "fine", "awful"] * 2
LABELS = np.array([1, 0, 1, 0, 1, 0] * 2)


@pytest.fixture(scope="module")
def modules(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hub")
    return {
        "image": save_image_module(root / "image"),
        "encoder": save_bert_encoder(root / "encoder"),
        "preprocess": save_bert_preprocess(root / "preprocess"),
    }


def _images(n: int = 8) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def _values(layer) -> dict[str, np.ndarray]:
    return {w.name: w.numpy().copy() for w in layer.weights}


def _hub(model: keras.Model) -> HubLayer:
    return model.get_layer("backbone").model.get_layer("hub")


def _image_model(modules, **kwargs) -> keras.Model:
    return tltf.build_image_classifier(
        f"hub:{modules['image']}", 3, input_shape=(32, 32, 3), **kwargs
    )


# --- the layer ---


def test_weights_are_the_module_variables(modules):
    layer = HubLayer(modules["image"], trainable=True)
    module_vars = {id(v) for v in layer.module.variables}
    assert {id(w.value) for w in layer.weights} == module_vars
    assert [w.name for w in layer.trainable_weights] == [
        "dense_kernel",
        "dense_bias",
        "bn_gamma",
        "bn_beta",
    ]
    assert [w.name for w in layer.non_trainable_weights] == [
        "bn_moving_mean",
        "bn_moving_variance",
    ]
    x = tf.random.uniform((2, 4, 4, 3))
    np.testing.assert_allclose(layer(x), layer.module(x), rtol=1e-6)
    assert layer(x).shape == (2, FEATURES)


def test_assigning_a_weight_changes_the_module(modules):
    layer = HubLayer(modules["image"])
    layer.weights[1].assign(np.full(FEATURES, 5.0, "float32"))
    np.testing.assert_array_equal(layer.module.variables[1].numpy(), 5.0)


def test_training_argument_reaches_the_module(modules):
    layer = HubLayer(modules["image"], trainable=True)
    x = tf.random.uniform((4, 4, 4, 3))
    before = _values(layer)
    layer(x, training=False)
    np.testing.assert_array_equal(layer.weights[4].numpy(), before["bn_moving_mean"])
    layer(x, training=True)
    assert not np.allclose(layer.weights[4].numpy(), before["bn_moving_mean"])
    frozen = HubLayer(modules["image"], trainable=False)
    frozen(x, training=True)  # A frozen module runs in inference mode.
    np.testing.assert_array_equal(frozen.weights[4].numpy(), 0.0)


def test_regularization_losses_only_while_trainable(modules):
    layer = HubLayer(modules["image"], trainable=True)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, layer(inputs))
    model(np.zeros((1, 8, 8, 3), "float32"))
    kernel = layer.weights[0].numpy()
    assert len(model.losses) == 1
    np.testing.assert_allclose(model.losses[0], REG_SCALE * np.sum(kernel**2), 1e-5)
    layer.trainable = False
    model(np.zeros((1, 8, 8, 3), "float32"))
    assert model.losses == []


def test_config_round_trip(modules):
    layer = HubLayer(modules["encoder"], output_key="pooled_output", name="enc")
    clone = HubLayer.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.output_key == "pooled_output" and not clone.trainable


def test_signature_and_bad_output_key(tmp_path, modules):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.export(str(tmp_path / "exported"), verbose=False)
    layer = HubLayer(tmp_path / "exported", signature="serving_default")
    out = layer(np.ones((1, 3), "float32"))
    np.testing.assert_allclose(list(out.values())[0], model(np.ones((1, 3))), 1e-6)
    assert len(layer.weights) == 2
    with pytest.raises(ConfigError, match="no signature 'nope'"):
        HubLayer(tmp_path / "exported", signature="nope")
    with pytest.raises(ConfigError, match="no output 'nope'"):
        HubLayer(modules["encoder"], output_key="nope")(
            {k: np.ones((1, 4), "int32") for k in tfhub.BERT_INPUTS}
        )


def test_keras_export_folder_is_a_backbone(tmp_path):
    base = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.Flatten()]
    )
    base.export(str(tmp_path / "base"), verbose=False)
    model = tltf.build_image_classifier(
        f"hub:{tmp_path / 'base'}", 2, input_shape=(8, 8, 3)
    )
    assert len(_hub(model).weights) == 2
    tltf.unfreeze_backbone(model)
    tltf.compile_model(model, learning_rate=0.1)
    before = _values(_hub(model))
    model.train_on_batch(_images(4)[:, :8, :8], np.array([0, 1, 0, 1]))
    assert _moved_any(before, _hub(model))


def _moved_any(before: dict[str, np.ndarray], layer) -> bool:
    return any(not np.allclose(before[w.name], w.numpy()) for w in layer.weights)


# --- handles ---


def test_missing_folder_says_what_to_pass(tmp_path):
    with pytest.raises(MissingWeightsError, match="does not exist"):
        HubLayer(tmp_path / "nowhere")
    with pytest.raises(MissingWeightsError, match="is not a SavedModel"):
        tltf.get_backbone(f"hub:{tmp_path}")


def test_offline_url_fails_fast_with_local_copy_advice(monkeypatch, tmp_path):
    monkeypatch.setenv("TFHUB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(hub_handles, "can_reach", lambda url: False)
    url = "https://tfhub.dev/google/imagenet/mobilenet_v2_100_224/feature_vector/5"
    with pytest.raises(MissingWeightsError, match="hub:/path/to/folder"):
        tltf.build_image_classifier(f"hub:{url}", 3)


def test_hub_specs_know_their_modality(modules):
    image = tltf.get_backbone(f"hub:{modules['image']}")
    assert (image.modality, image.preprocessing) == ("image", "unit")
    assert tltf.get_backbone(f"hub:{modules['encoder']}").modality == "text"


# --- image classifiers ---


def test_frozen_hub_base_does_not_train(modules):
    model = _image_model(modules)
    assert [layer.name for layer in model.layers] == [
        "pixels",
        "preprocess",
        "backbone",
        "head",
    ]
    assert model.get_layer("backbone").layer_groups == {"hub": ["hub"]}
    before = _values(_hub(model))
    model.train_on_batch(_images(), np.arange(8) % 3)
    for name, value in _values(_hub(model)).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)


def test_unfrozen_hub_base_trains_but_keeps_bn_statistics(modules):
    model = _image_model(modules)
    tltf.unfreeze_backbone(model)
    tltf.compile_model(model, learning_rate=0.01)
    assert tltf.trainable_groups(model) == ["hub"]
    before = _values(_hub(model))
    model.train_on_batch(_images(), np.arange(8) % 3)
    after = _values(_hub(model))
    assert not np.allclose(after["dense_kernel"], before["dense_kernel"])
    assert not np.allclose(after["bn_gamma"], before["bn_gamma"])
    # The base runs in inference mode unless train_bn: statistics stay.
    np.testing.assert_array_equal(after["bn_moving_mean"], before["bn_moving_mean"])


def test_train_bn_updates_module_statistics(modules):
    model = _image_model(modules, train_bn=True)
    tltf.unfreeze_backbone(model)
    tltf.compile_model(model)
    model.train_on_batch(_images(), np.arange(8) % 3)
    assert not np.allclose(_values(_hub(model))["bn_moving_mean"], 0.0)


def test_keras_file_round_trip_restores_trained_weights(modules, tmp_path):
    model = _image_model(modules)
    tltf.unfreeze_backbone(model)
    tltf.compile_model(model, learning_rate=0.05)
    model.fit(_images(), np.arange(8) % 3, epochs=2, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    x = _images(4)
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)
    fresh = HubLayer(modules["image"]).weights[0].numpy()
    assert not np.allclose(_hub(reloaded).weights[0].numpy(), fresh)


def test_savedmodel_export_serves_same_predictions(modules, tmp_path):
    model = _image_model(modules)
    x = _images(4)
    model.export(str(tmp_path / "export"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "export"))
    served = restored.serve(x)
    np.testing.assert_allclose(served, model(x), atol=1e-6)


def test_builds_and_trains_under_a_distribution_strategy(modules):
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = _image_model(modules, compile=False)
        tltf.unfreeze_backbone(model)
        tltf.compile_model(model, learning_rate=0.01)
    hub = _hub(model)
    assert all(
        strategy.extended.variable_created_in_scope(w.value) for w in hub.weights
    )
    before = _values(hub)
    model.fit(_images(), np.arange(8) % 3, batch_size=8, epochs=1, verbose=0)
    assert not np.allclose(_values(hub)["dense_kernel"], before["dense_kernel"])


# --- text classifiers on TF Hub BERT ---


def _text_model(modules, **kwargs) -> keras.Model:
    return tltf.build_text_classifier(
        f"hub:{modules['encoder']}",
        2,
        preprocess=modules["preprocess"],
        sequence_length=16,
        **kwargs,
    )


def test_hub_text_classifier_packs_to_sequence_length(modules):
    model = _text_model(modules)
    assert [layer.name for layer in model.layers][:3] == [
        "text",
        "preprocess",
        "backbone",
    ]
    encoded = model.get_layer("preprocess")(tf.constant(["a good film"]))
    assert encoded["input_word_ids"].shape == (1, 16)
    assert encoded["input_mask"].numpy().sum() == 5  # [CLS] a good film [SEP]
    assert model(tf.constant(TEXTS[:3])).shape == (3, 2)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_hub_encoder_weights_train_only_when_unfrozen(modules, pooling):
    model = _text_model(modules, pooling=pooling)
    x = tf.constant(TEXTS)
    before = _values(_hub(model))
    if pooling == "cls":  # Frozen: a train step leaves the encoder as it was.
        model.train_on_batch(x, LABELS)
        for name, value in _values(_hub(model)).items():
            np.testing.assert_array_equal(value, before[name], err_msg=name)
    tltf.unfreeze_backbone(model)
    tltf.compile_model(model, learning_rate=0.01)
    model.train_on_batch(x, LABELS)
    after = _values(_hub(model))
    assert not np.allclose(after["words"], before["words"])
    pooler_moved = not np.allclose(after["pool"], before["pool"])
    assert pooler_moved == (pooling == "cls")


def test_hub_text_round_trip(modules, tmp_path):
    model = _text_model(modules, compile=False)
    model.save(tmp_path / "text.keras")
    reloaded = keras.saving.load_model(tmp_path / "text.keras")
    x = tf.constant(TEXTS[:4])
    np.testing.assert_allclose(reloaded(x), model(x), atol=1e-6)


def test_hub_encoder_needs_its_preprocess_model(modules):
    with pytest.raises(ConfigError, match="preprocess="):
        tltf.build_text_classifier(f"hub:{modules['encoder']}", 2)
    with pytest.raises(ConfigError, match="image backbone"):
        tltf.build_image_classifier(f"hub:{modules['encoder']}", 2)
