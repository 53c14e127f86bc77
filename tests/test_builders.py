"""build_image_classifier: raw pixels in, frozen base, new head, clean errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tltf
from tests.support.helpers import (
    TINY_GROUPS,
    build_tiny_model,
    same,
    tiny_base,
    weights_of,
)

PIXELS = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype("uint8")
LABELS = np.array([0, 1, 2, 0, 1, 2])


def test_model_takes_raw_uint8_and_float_pixels_alike(tiny_model):
    as_uint8 = tiny_model.predict(PIXELS, verbose=0)
    as_float = tiny_model.predict(PIXELS.astype("float32"), verbose=0)
    np.testing.assert_allclose(as_uint8, as_float, rtol=1e-6)
    np.testing.assert_allclose(as_uint8.sum(axis=1), 1.0, rtol=1e-5)


def test_preprocessing_runs_inside_the_graph():
    model = tltf.build_image_classifier(
        "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3)
    )
    assert model.get_layer("preprocess").mode == "tf"
    base = model.backbone.model
    features = keras.Model(model.input, model.get_layer("backbone").output)
    expected = base.predict(PIXELS / 127.5 - 1.0, verbose=0)
    np.testing.assert_allclose(features.predict(PIXELS, verbose=0), expected, atol=1e-4)


def test_frozen_base_does_not_change_in_training_and_head_does(tiny_model):
    backbone = tiny_model.get_layer("backbone")
    base_before = weights_of(backbone.model.layers)  # BN moving stats included
    head_before = weights_of(tiny_model.get_layer("head"))
    tiny_model.fit(PIXELS, LABELS, epochs=2, batch_size=3, verbose=0)
    assert same(base_before, weights_of(backbone.model.layers))
    assert not same(head_before, weights_of(tiny_model.get_layer("head")))
    assert tiny_model.trainable_weights  # only the head
    assert all(v.path.startswith("head") for v in tiny_model.trainable_weights)


def test_frozen_resnet_keeps_batchnorm_statistics():
    model = tltf.build_image_classifier(
        "keras:resnet50", 2, weights=None, input_shape=(32, 32, 3)
    )
    bn = model.get_layer("backbone").model.get_layer("conv2_block1_1_bn")
    before = weights_of(bn)
    model.fit(PIXELS, LABELS % 2, epochs=1, batch_size=6, verbose=0)
    assert same(before, weights_of(bn))


@pytest.mark.parametrize(
    "task, num, labels",
    [
        ("multiclass", 3, LABELS),
        ("multilabel", 3, np.eye(3)[LABELS]),
        ("regression", 2, np.random.default_rng(1).normal(size=(6, 2))),
    ],
)
def test_keras_round_trip_predicts_the_same(tmp_path, task, num, labels):
    model = tltf.build_image_classifier(
        tiny_base(),
        num,
        task=task,
        layer_groups=TINY_GROUPS,
        hidden_units=(8,),
        pooling="max",
    )
    model.fit(PIXELS, labels, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(
        model.predict(PIXELS, verbose=0), reloaded.predict(PIXELS, verbose=0), atol=1e-6
    )
    assert reloaded.get_layer("backbone").layer_groups == TINY_GROUPS
    assert reloaded.get_layer("head").task == task
    assert reloaded.get_layer("backbone").trainable is False


def test_compile_defaults_include_accuracy_precision_recall_f1(tiny_model):
    logs = tiny_model.evaluate(PIXELS, LABELS, verbose=0, return_dict=True)
    assert {"loss", "accuracy", "precision", "recall", "f1"} <= set(logs)


def test_augmentation_is_active_only_in_training():
    model = build_tiny_model(augment="default")
    x = PIXELS.astype("float32")
    np.testing.assert_allclose(model(x, training=False), model(x, training=False))
    assert not np.allclose(model(x, training=True), model(x, training=False))


def test_user_keras_file_as_backbone(tmp_path):
    base = tiny_base()
    base.save(tmp_path / "base.keras")
    model = tltf.build_image_classifier(tmp_path / "base.keras", 3)
    groups = model.backbone.layer_groups
    assert list(groups) == ["part1", "part2", "part3", "part4"][: len(groups)]
    assert model.predict(PIXELS, verbose=0).shape == (6, 3)


def test_local_weights_file_is_loaded(tmp_path):
    spec = tltf.get_backbone("keras:mobilenet_v3_small")
    source = spec.constructor(input_shape=(32, 32, 3), weights=None)
    source.save_weights(tmp_path / "mnv3.weights.h5")
    model = tltf.build_image_classifier(
        "keras:mobilenet_v3_small",
        3,
        weights=tmp_path / "mnv3.weights.h5",
        input_shape=(32, 32, 3),
    )
    assert same(
        weights_of(source.layers), weights_of(model.get_layer("backbone").model.layers)
    )


def test_weights_file_of_another_architecture_is_a_clear_error(tmp_path):
    other = tltf.get_backbone("keras:vgg16").constructor(
        input_shape=(32, 32, 3), weights=None
    )
    other.save_weights(tmp_path / "vgg.weights.h5")
    with pytest.raises(tltf.ConfigError, match="does not fit 'keras:mobilenet_v2'"):
        tltf.build_image_classifier(
            "keras:mobilenet_v2",
            3,
            weights=tmp_path / "vgg.weights.h5",
            input_shape=(32, 32, 3),
        )


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(tltf.MissingWeightsError, match="does not exist"):
        tltf.build_image_classifier(
            "keras:vgg16", 3, weights=tmp_path / "nope.h5", input_shape=(32, 32, 3)
        )


@pytest.mark.parametrize("num_classes", [1, 0])
def test_multiclass_needs_two_classes(num_classes):
    with pytest.raises(tltf.ConfigError, match="num_classes"):
        tltf.build_image_classifier(tiny_base(), num_classes, layer_groups=TINY_GROUPS)


@pytest.mark.parametrize("shape", [(16, 16, 3), (64, 64, 1)])
def test_input_size_the_backbone_cannot_take(shape):
    with pytest.raises(tltf.ConfigError, match="input_shape"):
        tltf.build_image_classifier(
            "keras:resnet50", 3, weights=None, input_shape=shape
        )


def test_unknown_augment_is_rejected():
    with pytest.raises(tltf.ConfigError, match="Unknown augment"):
        build_tiny_model(augment="lots")
