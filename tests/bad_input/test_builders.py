# ruff: noqa: E501 (one row per line)
"""Bad input to the builders, the registry and the layers: a clear error or a
correct result.

Image rows build on the tiny conv base (`tests.support.helpers.tiny_base`) or
MobileNetV2 with ``weights=None`` at 32x32; text rows on a 2-layer BERT
preset written once (16 positions).
"""

from __future__ import annotations

import functools
from pathlib import Path

import keras
import numpy as np
import pytest

import tltf
from tests.bad_input.rows import Raises, Row, check, params, scratch
from tests.support.helpers import (
    TINY_GROUPS,
    build_tiny_model,
    tiny_base,
    tiny_bert_preset,
)
from tltf.errors import ConfigError, MissingWeightsError

TEXTS = ["a good film", "a bad film", "the cup final"]


def _root() -> Path:
    return scratch("builders")


@functools.cache
def _preset() -> str:
    return f"kerashub:{tiny_bert_preset(_root() / 'tiny_bert', TEXTS)}"


@functools.cache
def _garbage_weights() -> Path:
    path = _root() / "garbage.h5"
    path.write_bytes(b"these are not weights" * 10)
    return path


def _image(**kwargs):
    kwargs.setdefault("preprocessing", "unit")
    kwargs.setdefault("layer_groups", TINY_GROUPS)
    return tltf.build_image_classifier(
        kwargs.pop("backbone", tiny_base()), kwargs.pop("num_classes", 3), **kwargs
    )


def _text(**kwargs):
    return tltf.build_text_classifier(
        _preset(),
        kwargs.pop("num_classes", 2),
        sequence_length=kwargs.pop("sequence_length", 8),
        **kwargs,
    )


def _mobilenet(**kwargs):
    kwargs.setdefault("weights", None)
    return tltf.build_image_classifier("keras:mobilenet_v2", 3, **kwargs)


def _predicts(x, shape: tuple) -> callable:
    def outcome(model) -> None:
        probabilities = model.predict(x, verbose=0)
        assert probabilities.shape == shape, probabilities.shape
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)

    return outcome


def _output_shape(x, shape: tuple) -> callable:
    def outcome(model) -> None:
        assert model.predict(x, verbose=0).shape == shape

    return outcome


def _optimizer_named(name: str) -> callable:
    def outcome(model) -> None:
        assert type(model.optimizer).__name__ == name, model.optimizer

    return outcome


def _contains(item) -> callable:
    def outcome(result) -> None:
        assert item in result, result

    return outcome


pixels = np.zeros((2, 32, 32, 3), "uint8")

# fmt: off
ROWS = [
    # --- build_image_classifier ---
    Row("build_image_classifier", "num_classes as a string", lambda: _image(num_classes="3"), Raises(ConfigError, "num_classes must be an integer >= 1 (a number, not a string)")),
    Row("build_image_classifier", "num_classes 0", lambda: _image(num_classes=0), Raises(ConfigError, "num_classes must be an integer >= 1")),
    Row("build_image_classifier", "num_classes 1, multiclass", lambda: _image(num_classes=1), Raises(ConfigError, "needs num_classes >= 2")),
    Row("build_image_classifier", "num_classes 1, regression", lambda: _image(num_classes=1, task="regression"), _output_shape(pixels, (2, 1))),
    Row("build_image_classifier", "negative learning_rate", lambda: _image(learning_rate=-1.0), Raises(ConfigError, "learning_rate must be a finite number > 0")),
    Row("build_image_classifier", "learning_rate as a string", lambda: _image(learning_rate="1e-3"), Raises(ConfigError, "Received: learning_rate='1e-3'")),
    Row("build_image_classifier", "NaN learning_rate", lambda: _image(learning_rate=float("nan")), Raises(ConfigError, "learning_rate must be")),
    Row("build_image_classifier", "unknown registry name", lambda: tltf.build_image_classifier("keras:nonet", 3), Raises(ConfigError, "keras:nonet")),
    Row("build_image_classifier", "a text backbone", lambda: tltf.build_image_classifier("kerashub:all-minilm-l6-v2", 3), Raises(ConfigError, "is a text backbone")),
    Row("build_image_classifier", "a file that is not weights", lambda: _mobilenet(weights=_garbage_weights(), input_shape=(32, 32, 3)), Raises(ConfigError, "does not fit 'keras:mobilenet_v2'")),
    Row("build_image_classifier", "a weights file that does not exist", lambda: _mobilenet(weights=_root() / "none.h5"), Raises(MissingWeightsError, "does not exist")),
    Row("build_image_classifier", "input_shape of two sides", lambda: _mobilenet(input_shape=(32, 32)), Raises(ConfigError, "input_shape must be (height, width, 3)")),
    Row("build_image_classifier", "greyscale input_shape", lambda: _mobilenet(input_shape=(32, 32, 1)), Raises(ConfigError, "takes RGB images")),
    Row("build_image_classifier", "input_shape too small", lambda: _mobilenet(input_shape=(8, 8, 3)), Raises(ConfigError, "at least 32x32")),
    Row("build_image_classifier", "a .keras backbone that does not exist", lambda: tltf.build_image_classifier(_root() / "none.keras", 3), Raises(ConfigError, "does not exist")),
    Row("build_image_classifier", "unknown augment", lambda: _image(augment="yes"), Raises(ConfigError, "Unknown augment 'yes'")),
    Row("build_image_classifier", "unknown pooling", lambda: _image(pooling="mean"), Raises(ConfigError, "Unknown pooling 'mean'")),
    Row("build_image_classifier", "unknown task", lambda: _image(task="binary"), Raises(ConfigError, "Unknown head task 'binary'")),
    Row("build_image_classifier", "dropout 1.5", lambda: _image(dropout=1.5), Raises(ConfigError, "dropout")),
    Row("build_image_classifier", "unknown preprocessing", lambda: _image(preprocessing="bgr"), Raises(ConfigError, "Unknown preprocessing mode 'bgr'")),
    Row("build_image_classifier", "layer_groups naming a missing layer", lambda: _image(layer_groups={"x": ["no_such_layer"]}), Raises(ConfigError, "no_such_layer")),
    Row("build_image_classifier", "input_shape for a model backbone of another shape", lambda: _image(input_shape=(64, 64, 3)), Raises(ConfigError, "cannot apply to the backbone model")),
    Row("build_image_classifier", "MobileNetV2 at 32x32", lambda: _mobilenet(input_shape=(32, 32, 3)), _predicts(pixels, (2, 3))),
    # --- build_text_classifier ---
    Row("build_text_classifier", "sequence_length beyond the positions", lambda: _text(sequence_length=600), Raises(ConfigError, "position embeddings stop at 16 tokens")),
    Row("build_text_classifier", "sequence_length as a string", lambda: _text(sequence_length="128"), Raises(ConfigError, "sequence_length must be an integer >= 3")),
    Row("build_text_classifier", "sequence_length 2", lambda: _text(sequence_length=2), Raises(ConfigError, "sequence_length must be an integer >= 3")),
    Row("build_text_classifier", "an image backbone", lambda: tltf.build_text_classifier("keras:resnet50", 2), Raises(ConfigError, "is an image backbone")),
    Row("build_text_classifier", "image pooling", lambda: _text(pooling="avg"), Raises(ConfigError, "Unknown text pooling 'avg'")),
    Row("build_text_classifier", "preprocess= for a KerasHub encoder", lambda: _text(preprocess="/x"), Raises(ConfigError, "brings its own tokenizer")),
    Row("build_text_classifier", "a preset folder that does not exist", lambda: tltf.build_text_classifier(f"kerashub:{_root() / 'nope'}", 2), Raises(tltf.TltfError, "nope")),
    Row("build_text_classifier", "negative learning_rate", lambda: _text(learning_rate=-0.1), Raises(ConfigError, "learning_rate must be a finite number > 0")),
    Row("build_text_classifier", "num_classes as a float", lambda: _text(num_classes=2.0), Raises(ConfigError, "num_classes must be an integer")),
    Row("build_text_classifier", "tiny BERT, mean pooling", lambda: _text(pooling="mean"), _predicts(["a good film", "a bad film"], (2, 2))),
    # --- registry ---
    Row("get_backbone", "not a string", lambda: tltf.get_backbone(123), Raises(ConfigError, "must be a string")),
    Row("get_backbone", "unknown name", lambda: tltf.get_backbone("keras:resnet5"), Raises(ConfigError, "keras:resnet50")),
    Row("list_backbones", "an unknown kind", lambda: tltf.list_backbones("audio"), Raises(ConfigError, "Unknown kind of backbone 'audio'; use one of ['image', 'text']")),
    Row("list_backbones", "image", lambda: tltf.list_backbones("image"), _contains("keras:resnet50")),
    Row("list_backbones", "text", lambda: tltf.list_backbones("text"), _contains("kerashub:all-minilm-l6-v2")),
    # --- compile_model ---
    Row("compile_model", "negative learning_rate", lambda: tltf.compile_model(build_tiny_model(compile=False), learning_rate=-1.0), Raises(ConfigError, "learning_rate must be a finite number > 0")),
    Row("compile_model", "zero learning_rate", lambda: tltf.compile_model(build_tiny_model(compile=False), learning_rate=0), Raises(ConfigError, "learning_rate must be")),
    Row("compile_model", "a model without a tltf head", lambda: tltf.compile_model(keras.Sequential([keras.Input((2,)), keras.layers.Dense(2)])), Raises(ConfigError, "Head")),
    Row("compile_model", "an optimizer by name", lambda: tltf.compile_model(build_tiny_model(compile=False), optimizer="sgd"), _optimizer_named("SGD")),
    # --- layers and metrics ---
    Row("Head", "num_classes 0", lambda: tltf.Head(0), Raises(ConfigError, "num_classes")),
    Row("Head", "unknown task", lambda: tltf.Head(3, task="ranking"), Raises(ConfigError, "Unknown head task")),
    Row("Head", "negative dropout", lambda: tltf.Head(3, dropout=-0.1), Raises(ConfigError, "dropout")),
    Row("Head", "hidden_units with a 0", lambda: tltf.Head(3, hidden_units=(0,)), Raises(ConfigError, "hidden_units")),
    Row("Head", "temperature 0", lambda: tltf.Head(3, temperature=0), Raises(ConfigError, "temperature must be a positive number")),
    Row("Head", "rejection_threshold 2", lambda: tltf.Head(3, rejection_threshold=2), Raises(ConfigError, "rejection_threshold must be a probability in [0, 1]")),
    Row("Preprocess", "unknown mode", lambda: tltf.Preprocess("bgr"), Raises(ConfigError, "Unknown preprocessing mode")),
    Row("Preprocess", "tf mode", lambda: tltf.Preprocess("tf")(np.full((1, 1, 1, 3), 255.0)), lambda out: np.testing.assert_allclose(np.asarray(out), 1.0)),
    Row("Backbone", "a group that does not exist", lambda: tltf.Backbone(tiny_base(), layer_groups=TINY_GROUPS).group_layers("block9"), Raises(ConfigError, "Unknown layer group 'block9'")),
    Row("Backbone", "not a model", lambda: tltf.Backbone("resnet"), Raises(ConfigError, "keras")),
    Row("BackboneSpec", "unknown modality", lambda: tltf.BackboneSpec("x:y", "audio", tiny_base), Raises(ConfigError, "modality")),
    Row("HubLayer", "a folder that does not exist", lambda: tltf.HubLayer(_root() / "no_model"), Raises(tltf.TltfError, "no_model")),
    Row("MacroF1", "num_classes 0", lambda: tltf.MacroF1(0), Raises(ConfigError, "num_classes")),
    Row("MacroPrecision", "num_classes as a string", lambda: tltf.MacroPrecision("3"), Raises(ConfigError, "num_classes")),
    Row("MacroRecall", "threshold 2", lambda: tltf.MacroRecall(3, multi_label=True, threshold=2), Raises(ConfigError, "threshold")),
    Row("MacroF1", "a perfect prediction", lambda: _f1([0, 1, 2], np.eye(3)), lambda value: np.testing.assert_allclose(value, 1.0)),
    Row("build_image_classifier", "name as a number", lambda: tltf.build_image_classifier(tiny_base(), 3, name=3), Raises(ConfigError, "name must be a string or None")),
    Row("build_image_classifier", "head as a word", lambda: tltf.build_image_classifier(tiny_base(), 3, head="dense"), Raises(ConfigError, "head must be a tltf.Head")),
    Row("build_image_classifier", "layer_groups as a list", lambda: tltf.build_image_classifier(tiny_base(), 3, layer_groups=["block1_conv"]), Raises(ConfigError, "layer_groups must be a dict")),
    Row("build_image_classifier", "augment as a list of words", lambda: tltf.build_image_classifier(tiny_base(), 3, augment=["flip"]), Raises(ConfigError, "Received an item 'flip'")),
    Row("build_image_classifier", "compile='no'", lambda: tltf.build_image_classifier(tiny_base(), 3, compile="no"), Raises(ConfigError, "compile must be True or False")),
    Row("build_image_classifier", "train_bn as a word", lambda: tltf.build_image_classifier(tiny_base(), 3, train_bn="no"), Raises(ConfigError, "train_bn must be True or False")),
    Row("build_image_classifier", "a whole classifier as the backbone", lambda: tltf.build_image_classifier(build_tiny_model(), 4), Raises(ConfigError, "model.backbone.model")),
    Row("build_text_classifier", "compile as a string", lambda: tltf.build_text_classifier(_preset(), 2, sequence_length=8, compile="False"), Raises(ConfigError, "compile must be True or False")),
    Row("compile_model", "an unknown optimizer name", lambda: tltf.compile_model(build_tiny_model(compile=False), optimizer="nadamx"), Raises(ConfigError, "Unknown optimizer 'nadamx'")),
]
# fmt: on


def _f1(labels, probabilities) -> float:
    metric = tltf.MacroF1(3)
    metric.update_state(np.asarray(labels), np.asarray(probabilities, "float32"))
    return float(metric.result())


@pytest.mark.parametrize("row", params(ROWS))
def test_builder(row: Row) -> None:
    check(row)
