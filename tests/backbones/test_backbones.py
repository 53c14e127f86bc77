"""Registry, specs, layer groups and preprocessing of the image backbones."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest

import tltf
from tltf.backbones import loading
from tltf.backbones.layers import Preprocess
from tltf.backbones.spec import match_layer_groups

REQUIRED = [
    "keras:vgg16",
    "keras:resnet50",
    "keras:mobilenet_v2",
    "keras:mobilenet_v3_small",
    "keras:efficientnet_b0",
]

EXPECTED_GROUPS = {
    "keras:vgg16": ["block1", "block2", "block3", "block4", "block5"],
    "keras:resnet50": ["stem", "conv2", "conv3", "conv4", "conv5"],
    "keras:mobilenet_v2": ["stem", "stage1", "stage2", "stage3", "stage4", "top"],
    "keras:mobilenet_v3_small": ["stem", "stage1", "stage2", "stage3", "top"],
    "keras:efficientnet_b0": ["stem"] + [f"block{i}" for i in range(1, 8)] + ["top"],
}


def test_list_backbones_has_the_required_image_backbones():
    names = tltf.list_backbones("image")
    assert set(REQUIRED) <= set(names)
    assert names == sorted(names)


def test_unknown_backbone_lists_known_names_and_what_was_received():
    with pytest.raises(tltf.ConfigError) as err:
        tltf.get_backbone("keras:resnet5")
    message = str(err.value)
    assert "keras:resnet50" in message and "keras:vgg16" in message
    assert "Received: 'keras:resnet5'" in message


def test_aliases_resolve_to_the_same_spec():
    assert tltf.get_backbone("resnet50") is tltf.get_backbone("keras:resnet50")


@pytest.mark.parametrize("name", REQUIRED)
def test_every_weighted_layer_belongs_to_exactly_one_named_group(name):
    spec = tltf.get_backbone(name)
    base = spec.constructor(input_shape=(32, 32, 3), weights=None)
    groups = match_layer_groups(base, spec.group_patterns)
    assert list(groups) == EXPECTED_GROUPS[name]
    grouped = [layer for names in groups.values() for layer in names]
    assert len(grouped) == len(set(grouped))
    weighted = {layer.name for layer in base.layers if layer.weights}
    assert weighted <= set(grouped)
    # Groups run from the input side to the output side, without interleaving.
    order = {layer.name: i for i, layer in enumerate(base.layers)}
    spans = [
        (min(order[n] for n in ns), max(order[n] for n in ns)) for ns in groups.values()
    ]
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))


def test_weighted_layer_outside_every_pattern_is_a_clear_error():
    base = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="odd")])
    with pytest.raises(tltf.ConfigError, match="'odd' .* matches no layer group"):
        match_layer_groups(base, [("block1", r"^block1_")])


@pytest.mark.parametrize(
    "mode, reference",
    [
        ("caffe", keras.applications.vgg16.preprocess_input),
        ("tf", keras.applications.mobilenet_v2.preprocess_input),
        ("torch", keras.applications.densenet.preprocess_input),
    ],
)
def test_preprocess_matches_keras_applications(mode, reference):
    pixels = np.random.default_rng(0).uniform(0, 255, (2, 5, 5, 3)).astype("float32")
    ours = np.asarray(Preprocess(mode)(pixels))
    np.testing.assert_allclose(ours, reference(pixels.copy()), rtol=1e-5, atol=1e-4)


def test_unknown_preprocessing_mode_is_rejected():
    with pytest.raises(tltf.ConfigError, match="Unknown preprocessing mode"):
        Preprocess("imagenet")


def test_missing_imagenet_weights_offline_fail_fast_with_file_and_place(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(loading, "can_reach", lambda url: False)
    start = time.monotonic()
    with pytest.raises(tltf.MissingWeightsError) as err:
        tltf.build_image_classifier("keras:vgg16", 3)
    assert time.monotonic() - start < 30
    message = str(err.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(tmp_path / "models") in message


def test_real_offline_probe_answers_within_seconds():
    start = time.monotonic()
    loading.can_reach("https://nonexistent.invalid/weights.h5")
    assert time.monotonic() - start < 3 * loading._PROBE_TIMEOUT_S + 5


def test_cached_imagenet_file_is_used_without_probing(tmp_path, monkeypatch):
    """A weights file in the Keras cache is found offline and loaded."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(loading, "can_reach", lambda url: False)
    spec = tltf.get_backbone("keras:vgg16")
    source = spec.constructor(input_shape=(224, 224, 3), weights=None)
    (tmp_path / "models").mkdir()
    source.save_weights(tmp_path / "models" / "vgg16.weights.h5")
    (tmp_path / "models" / "vgg16.weights.h5").rename(
        tmp_path / "models" / spec.weights_file
    )
    loading._ensure_imagenet_available(spec)  # Does not raise.
