"""The hand-written baseline: the official Keras transfer-learning recipe.

This is what a user writes without tltf, following the Keras guide
"Transfer learning & fine-tuning": a frozen base called with
``training=False``, a new head, ``fit`` over the images every epoch; then the
base is unfrozen and the model recompiled with a low learning rate.
"""

from __future__ import annotations

import keras


def build_recipe_model(
    input_shape: tuple[int, int, int], num_classes: int, weights: str | None
) -> tuple[keras.Model, keras.Model]:
    """Builds the guide's model; returns ``(model, base_model)``.

    Args:
        input_shape: ``(height, width, 3)``.
        num_classes: Number of classes.
        weights: Weights file of the MobileNetV2 base (include_top=False).

    Returns:
        The compiled model (frozen base) and its base.
    """
    base_model = keras.applications.MobileNetV2(
        input_shape=input_shape, include_top=False, weights=weights
    )
    base_model.trainable = False
    inputs = keras.Input(shape=input_shape)
    x = keras.layers.Rescaling(scale=1 / 127.5, offset=-1)(inputs)
    x = base_model(x, training=False)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.2)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    compile_recipe(model, learning_rate=1e-3)
    return model, base_model


def compile_recipe(
    model: keras.Model, learning_rate: float, jit_compile: bool | str = "auto"
) -> None:
    """Compiles as the guide does: Adam, sparse cross-entropy, accuracy."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=jit_compile,
    )


def unfreeze_recipe(
    model: keras.Model, base_model: keras.Model, jit_compile: bool | str = "auto"
) -> None:
    """The guide's fine-tuning step: unfreeze the base, recompile at 1e-5."""
    base_model.trainable = True
    compile_recipe(model, learning_rate=1e-5, jit_compile=jit_compile)
