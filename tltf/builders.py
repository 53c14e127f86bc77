"""Builders: join a pretrained base and a new head into one Keras model.

Every builder makes the same shape of functional model::

    raw input -> [augmentation] -> preprocessing -> Backbone -> Head

The base is frozen and runs in inference mode; the head is new. Adding a
backbone means declaring a `BackboneSpec`, never writing another builder.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import keras

from tltf.backbones.layers import Backbone, Preprocess
from tltf.backbones.loading import load_image_base
from tltf.errors import ConfigError
from tltf.heads import Head, compile_defaults, find_head

DEFAULT_LEARNING_RATE = 1e-3


def build_image_classifier(
    backbone: str | keras.Model | os.PathLike,
    num_classes: int,
    *,
    weights: str | os.PathLike | None = "imagenet",
    input_shape: tuple[int, int, int] | None = None,
    head: Head | None = None,
    task: str = "multiclass",
    pooling: str | None = "avg",
    dropout: float = 0.2,
    hidden_units: Sequence[int] = (),
    augment: str | Sequence[keras.layers.Layer] | None = None,
    preprocessing: str | None = None,
    layer_groups: dict[str, list[str]] | None = None,
    train_bn: bool = False,
    compile: bool = True,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    name: str | None = None,
) -> keras.Model:
    """Builds an image model on a pretrained base with a frozen base and new head.

    The model takes raw pixels (0-255, uint8 or float, shape
    ``(batch, height, width, 3)``) and applies the base's own preprocessing
    inside the graph.

    Args:
        backbone: A registry name (``"keras:resnet50"``; see
            `tltf.list_backbones`), a ``keras.Model`` mapping images to
            features, or the path of a saved ``.keras`` model.
        num_classes: Number of classes (or regression targets).
        weights: ``"imagenet"``, None (random), or a local weights file.
        input_shape: ``(height, width, 3)``; None for the base's default.
        head: A ready `Head`; overrides task/pooling/dropout/hidden_units.
        task: ``"multiclass"``, ``"multilabel"`` or ``"regression"``.
        pooling: ``"avg"``, ``"max"`` or ``"flatten"``.
        dropout: Dropout rate in the head.
        hidden_units: Hidden dense layers in the head.
        augment: ``"default"`` (flip, rotation, zoom), a list of Keras
            preprocessing layers, or None. Active only in training.
        preprocessing: Overrides the base's preprocessing mode (see
            `tltf.backbones.Preprocess`); needed for user models that expect
            something other than the raw pixels.
        layer_groups: Overrides the base's named layer groups.
        train_bn: Let BatchNorm layers of unfrozen groups update statistics.
        compile: Compile with Adam and the head's default loss and metrics.
        learning_rate: Learning rate of the default optimizer.
        name: Model name; defaults to ``"<backbone>_classifier"``.

    Returns:
        A functional ``keras.Model`` with layers ``backbone`` and ``head``.

    Raises:
        ConfigError: Unknown backbone, bad num_classes, input size or weights.
        MissingWeightsError: ImageNet weights offline and not cached.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3))
        >>> model.predict(np.zeros((1, 32, 32, 3), "uint8")).shape
        (1, 3)
    """
    head = head or Head(
        num_classes,
        task=task,
        pooling=pooling,
        dropout=dropout,
        hidden_units=hidden_units,
    )
    base = load_image_base(
        backbone,
        weights=weights,
        input_shape=input_shape,
        preprocessing=preprocessing,
        layer_groups=layer_groups,
    )
    shape = tuple(base.model.input_shape[1:])
    # --- layers ---
    inputs = keras.Input(shape=shape, name="pixels")
    x = inputs
    for layer in augmentation_layers(augment):
        x = layer(x)
    x = Preprocess(base.preprocessing, name="preprocess")(x)
    wrapped = Backbone(
        base.model,
        layer_groups=base.layer_groups,
        train_bn=train_bn,
        source=base.source,
    )
    wrapped.trainable = False
    outputs = head(wrapped(x))
    model_name = name or f"{base.short_name}_classifier"
    model = keras.Model(inputs, outputs, name=_safe_name(model_name))
    if compile:
        compile_model(model, learning_rate=learning_rate)
    return model


def augmentation_layers(
    augment: str | Sequence[keras.layers.Layer] | None,
) -> list[keras.layers.Layer]:
    """Training-only augmentation layers for an image model.

    Args:
        augment: ``"default"``, a list of layers, or None.

    Returns:
        The layers, in order. Keras' random preprocessing layers are identity
        at inference, so exported models are unaffected.
    """
    if augment is None:
        return []
    if augment == "default":
        return [
            keras.layers.RandomFlip("horizontal", name="augment_flip"),
            keras.layers.RandomRotation(0.1, name="augment_rotation"),
            keras.layers.RandomZoom(0.1, name="augment_zoom"),
        ]
    if isinstance(augment, str):
        raise ConfigError(
            f"Unknown augment {augment!r}: use 'default', a list of Keras "
            "preprocessing layers, or None."
        )
    return list(augment)


def compile_model(
    model: keras.Model,
    *,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    optimizer: keras.optimizers.Optimizer | None = None,
    **overrides: Any,
) -> keras.Model:
    """Compiles a tltf model with the defaults of its head's task.

    Args:
        model: A model built by a tltf builder.
        learning_rate: Learning rate of the default Adam optimizer.
        optimizer: An optimizer to use instead of Adam.
        **overrides: Any other ``model.compile`` argument (loss, metrics, ...).

    Returns:
        The same model, compiled.
    """
    args = compile_defaults(find_head(model))
    args.update(overrides)
    model.compile(optimizer=optimizer or keras.optimizers.Adam(learning_rate), **args)
    return model


def _safe_name(name: str) -> str:
    """Makes ``name`` a valid Keras/TF scope name."""
    cleaned = "".join(c if c.isalnum() or c in "_-." else "_" for c in name)
    return cleaned.lstrip("_-") or "model"
