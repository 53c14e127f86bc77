"""What a tltf model is made of: its backbone, its head and its preprocessing.

`ModelParts` holds them, located once among a model's layers (keras-hub's
``Task`` holds its ``backbone`` and ``preprocessor`` the same way), with the
way to compute the features the head reads (`ModelParts.feature_model`,
`ModelParts.pooled_features`). A `tltf.TransferModel` locates its parts when
it is constructed; `tltf.model.parts_of` gives the parts of any model.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import keras

from tltf.backbones.layers import Backbone, find_backbone
from tltf.errors import ConfigError
from tltf.heads import Head, find_head, split_inputs

__all__ = ["ModelParts", "require_backbone", "require_head"]


@dataclasses.dataclass(eq=False)
class ModelParts:
    """What a tltf model is made of, located once.

    Attributes:
        name: The model's name (for messages).
        inputs: The model's symbolic inputs.
        backbone: The `Backbone` layer; None when the model has none (or
            several).
        head: The `Head` layer; None when the model has none (or several).
        preprocessing: The layers between the inputs and the backbone, in
            order: training-only augmentation, then what maps raw pixels or
            strings to the backbone's inputs (`Preprocess`, a text
            preprocessor). Empty without a backbone.
    """

    name: str
    inputs: Any
    backbone: Backbone | None
    head: Head | None
    preprocessing: tuple[keras.layers.Layer, ...]

    @classmethod
    def locate(cls, model: keras.Model) -> ModelParts:
        """Finds the parts among ``model``'s layers: the border, run once."""
        backbone, head = find_backbone(model), find_head(model)
        layers = list(getattr(model, "layers", []))
        before = layers[: layers.index(backbone)] if backbone is not None else []
        preprocessing = tuple(
            layer for layer in before if not isinstance(layer, keras.layers.InputLayer)
        )
        try:
            inputs = model.input
        except (AttributeError, ValueError):  # A model that was never called.
            inputs = None
        return cls(model.name, inputs, backbone, head, preprocessing)

    @functools.cached_property
    def feature_model(self) -> keras.Model:
        """The model from the inputs to what the head reads (made once).

        Its output is the head's input: base features, or ``[sequence,
        mask]`` for a head that pools over tokens (see
        `tltf.heads.split_inputs`).
        """
        head = require_head(self)
        return keras.Model(self.inputs, head.input, name="features")

    def pooled_features(self, x: Any, training: bool = False) -> Any:
        """``Head.pool`` of the base's output on inputs ``x``: one vector each."""
        head = require_head(self)
        return head.pool_inputs(self.feature_model(x, training=training))

    def pooled_shape(self) -> tuple:
        """The shape of `pooled_features`' output, batch size first (None)."""
        head = require_head(self)
        features, _ = split_inputs(head.input)
        return tuple(head.compute_pooled_shape(features.shape))


def require_backbone(parts: ModelParts) -> Backbone:
    """``parts.backbone``, or a `ConfigError` that says how to get one."""
    if parts.backbone is None:
        raise ConfigError(
            f"Model '{parts.name}' has no tltf Backbone layer (or several); "
            "expected exactly one. Build it with tltf.build_image_classifier or "
            "tltf.build_text_classifier, or wrap your base in "
            "tltf.backbones.Backbone."
        )
    return parts.backbone


def require_head(parts: ModelParts) -> Head:
    """``parts.head``, or a `ConfigError` that says how to get one."""
    if parts.head is None:
        raise ConfigError(
            f"Model '{parts.name}' has no tltf Head layer (or several); expected "
            "one. Build it with a tltf builder, or end your model with tltf.Head."
        )
    return parts.head
