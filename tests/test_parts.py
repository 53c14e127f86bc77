"""A tltf model knows its parts: backbone, head and preprocessing.

Covers `tltf.parts.ModelParts`, the parts a `tltf.TransferModel` locates when
it is constructed (built, reloaded from ``.keras``, built in a strategy's
scope, merged after LoRA), `tltf.model.parts_of` for models from outside
tltf, and `TransferModel.train_step_replaced`, the hook a procedure with its
own train step uses. Text rows: the tiny BERT with "cls" (its default) and
"mean" pooling, and the offline MiniLM ("mean", its head input a list).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import tltf
from tests.support.helpers import (
    TEXT_ROWS,
    TINY_GROUPS,
    build_tiny_model,
    text_row,
    tiny_base,
)
from tltf.errors import ConfigError
from tltf.model import parts_of

FIXTURES = Path(__file__).parent / "fixtures"
TEXTS = ["a good film", "great acting", "awful plot", "boring and dull"]


def _images(n: int = 4) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (n, 32, 32, 3)).astype("float32")


def assert_parts_are_the_layers(model: keras.Model, preprocessing: list[str]):
    assert model.backbone is model.get_layer("backbone")
    assert model.head is model.get_layer("head")
    assert [layer.name for layer in model.preprocessing] == preprocessing
    assert parts_of(model) is model.parts


def assert_parts_compute_the_outputs(model: keras.Model, x) -> None:
    """The head's classify on the parts' pooled features is the model's output."""
    pooled = model.parts.pooled_features(x)
    assert tuple(pooled.shape[1:]) == model.parts.pooled_shape()[1:]
    np.testing.assert_allclose(
        model.head.calibrate(model.head.classify(pooled)),
        model.predict(x, verbose=0),
        atol=1e-5,
    )


# --- images ---


def test_built_image_model_holds_its_parts():
    model = build_tiny_model(augment="default")

    augment = ["augment_flip", "augment_rotation", "augment_zoom"]
    assert_parts_are_the_layers(model, [*augment, "preprocess"])
    assert model.backbone.group_names == list(TINY_GROUPS)
    assert_parts_compute_the_outputs(model, _images())


def test_reloaded_model_locates_its_parts_again(tmp_path):
    model = build_tiny_model()
    model.save(tmp_path / "model.keras")

    reloaded = keras.saving.load_model(tmp_path / "model.keras")

    assert_parts_are_the_layers(reloaded, ["preprocess"])
    assert reloaded.backbone is not model.backbone
    assert reloaded.backbone.layer_groups == model.backbone.layer_groups
    assert_parts_compute_the_outputs(reloaded, _images())


@pytest.mark.parametrize("name", ["image_v0_1", "text_v0_1"])
def test_files_of_earlier_releases_know_their_parts(name):
    model = keras.saving.load_model(FIXTURES / f"{name}.keras")

    assert_parts_are_the_layers(model, ["preprocess"])
    assert model.backbone.group_names


def test_model_built_in_a_strategy_scope_holds_its_parts():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with tltf.strategy_scope(strategy):
        base = tiny_base()
        model = tltf.build_image_classifier(
            base, 3, preprocessing="unit", layer_groups=TINY_GROUPS, strategy=strategy
        )

    assert_parts_are_the_layers(model, ["preprocess"])
    assert model.backbone.model is base
    tltf.set_trainable_groups(model, ["block3"])
    assert tltf.trainable_groups(model) == ["block3"]


def test_parts_stay_through_enable_lora_and_a_merged_copy_has_its_own():
    model = build_tiny_model()
    backbone, head = model.backbone, model.head

    tltf.enable_lora(model, rank=2)
    merged = tltf.merge_lora(model)

    assert model.backbone is backbone and model.head is head
    assert tltf.training.lora.lora_summary(model)["layers"] > 0
    assert_parts_are_the_layers(merged, ["preprocess"])
    assert merged.backbone is not backbone
    assert merged.backbone.group_names == backbone.group_names
    assert tltf.training.lora.lora_summary(merged)["layers"] == 0
    assert_parts_compute_the_outputs(merged, _images())


# --- text ---


@pytest.fixture(scope="module", params=list(TEXT_ROWS))
def text_model(request, tmp_path_factory) -> keras.Model:
    """Every row of helpers.TEXT_ROWS: tiny BERT "cls" and "mean", MiniLM "mean"."""
    folder = tmp_path_factory.mktemp("bert") / "preset"
    backbone, pooling = text_row(request.param, folder, TEXTS)
    return tltf.build_text_classifier(backbone, 2, sequence_length=8, pooling=pooling)


def test_text_model_holds_its_parts(text_model):
    assert_parts_are_the_layers(text_model, ["preprocess"])
    mean = text_model.head.pooling == "avg"
    assert isinstance(text_model.head.input, list) == mean  # [sequence, mask]
    assert ("pooler" in text_model.backbone.group_names) != mean
    assert_parts_compute_the_outputs(text_model, tf.constant(TEXTS))


def test_reloaded_text_model_locates_its_parts_again(text_model, tmp_path):
    text_model.save(tmp_path / "text.keras")

    reloaded = keras.saving.load_model(tmp_path / "text.keras")

    assert_parts_are_the_layers(reloaded, ["preprocess"])
    assert_parts_compute_the_outputs(reloaded, tf.constant(TEXTS))


# --- models from outside tltf ---


def test_a_users_functional_model_is_searched_once():
    inputs = keras.Input((32, 32, 3))
    backbone = tltf.Backbone(tiny_base(), layer_groups=TINY_GROUPS)
    head = tltf.Head(3)
    model = keras.Model(inputs, head(backbone(inputs)))

    parts = parts_of(model)

    assert parts.backbone is backbone and parts.head is head
    assert parts.preprocessing == ()
    assert parts_of(model) is parts
    tltf.set_trainable_groups(model, ["block3"])
    assert tltf.trainable_groups(model) == ["block3"]


def test_a_model_without_a_part_says_which_and_how_to_build_one():
    inputs = keras.Input((4,))
    head_only = tltf.TransferModel(inputs, tltf.Head(2, pooling=None)(inputs))
    plain = keras.Model(inputs, keras.layers.Dense(2)(inputs))

    assert head_only.head is head_only.get_layer("head")
    assert head_only.preprocessing == ()
    with pytest.raises(ConfigError, match="has no tltf Backbone layer"):
        head_only.backbone  # noqa: B018
    with pytest.raises(ConfigError, match="build_image_classifier"):
        tltf.set_trainable_groups(plain, [])
    assert parts_of(plain).head is None


# --- a replaced train step ---


def test_a_replaced_train_step_runs_inside_and_is_gone_after_an_error():
    model = build_tiny_model()
    x, y = _images(), np.array([0, 1, 2, 0])
    seen = []

    def step(stepping_model, data):
        seen.append(stepping_model)
        logs = super(tltf.TransferModel, stepping_model).train_step(data)
        return {**logs, "replaced": tf.constant(1.0)}

    with model.train_step_replaced(step):
        logs = model.fit(x, y, epochs=1, verbose=0).history
    with pytest.raises(RuntimeError), model.train_step_replaced(step):
        raise RuntimeError("a failing procedure")

    assert logs["replaced"] == [1.0] and seen and seen[0] is model
    assert "replaced" not in model.fit(x, y, epochs=1, verbose=0).history
