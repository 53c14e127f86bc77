"""Heads: the new, trainable top of a transfer-learning model.

A head is one serializable layer: pooling, optional hidden layers, dropout and
the output layer. Its call is split into five methods that training also uses
on their own: `pool` (one vector per example) and `pool_inputs` (the same on
the head's inputs in its model), then `classify`, which is `represent` (the
hidden layers) followed by `predict_from` (the output layer). The frozen
stage trains `classify` on pooled features computed once; domain adaptation
aligns what `pool_inputs` or `represent` give.

`compile_defaults` gives the loss and metrics that fit a head's task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from tltf import _compat, arguments
from tltf.data.inputs import as_list
from tltf.errors import ConfigError
from tltf.metrics import MacroF1, MacroPrecision, MacroRecall

TASKS = ("multiclass", "multilabel", "regression")
POOLINGS = ("avg", "max", "flatten", None)


@keras.saving.register_keras_serializable(package="tltf")
class Head(keras.layers.Layer):
    """Pooling, hidden layers, dropout and an output layer.

    Args:
        num_outputs: Classes (multiclass, multilabel) or targets (regression).
        task: ``"multiclass"`` (softmax), ``"multilabel"`` (sigmoid per
            label) or ``"regression"`` (linear).
        pooling: ``"avg"`` or ``"max"`` over spatial positions or tokens
            (padding masked out), ``"flatten"``, or None when features are
            already pooled.
        dropout: Dropout rate before each dense layer; 0 for none.
        hidden_units: Sizes of hidden dense layers, e.g. ``(256,)``.
        activation: Activation of the hidden layers.
        temperature: Multiclass only: the softmax temperature applied at
            inference (``softmax(log(p) / temperature)``; 1 changes nothing).
            Set by `tltf.calibrate_rejection`, not usually by hand.
        rejection_threshold: Multiclass only: the top probability below
            which tltf's class answers (`tltf.predict_classes`,
            `tltf.evaluate`, every export) say ``"unknown"`` (index -1);
            None to always answer a class. ``predict`` still returns the
            probabilities. Set by `tltf.calibrate_rejection`.
        **kwargs: Standard layer arguments.

    Example:
        >>> head = Head(3, dropout=0.1, hidden_units=(16,))
        >>> head(np.zeros((2, 4, 4, 8))).shape
        (2, 3)
    """

    def __init__(
        self,
        num_outputs: int,
        task: str = "multiclass",
        pooling: str | None = "avg",
        dropout: float = 0.2,
        hidden_units: Sequence[int] = (),
        activation: str = "relu",
        temperature: float = 1.0,
        rejection_threshold: float | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "head")
        super().__init__(**kwargs)
        _validate_head(num_outputs, task, pooling, dropout)
        self.num_outputs = int(num_outputs)
        self.task = task
        self.pooling = pooling
        self.dropout = float(dropout)
        self.hidden_units = tuple(
            arguments.count("hidden_units (each)", u) for u in as_list(hidden_units)
        )
        self.activation = activation
        self.supports_masking = True
        self.temperature = 1.0
        self.rejection_threshold = None
        self.set_calibration(temperature, rejection_threshold)
        self.hidden = [
            keras.layers.Dense(units, activation=activation, name=f"hidden_{i}")
            for i, units in enumerate(self.hidden_units)
        ]
        self.dropouts = [
            keras.layers.Dropout(self.dropout, name=f"dropout_{i}")
            for i in range(len(self.hidden_units) + 1)
        ]
        output_activation = {
            "multiclass": "softmax",
            "multilabel": "sigmoid",
            "regression": None,
        }[task]
        # Outputs stay float32 under mixed precision, for a stable loss.
        self.output_layer = keras.layers.Dense(
            self.num_outputs,
            activation=output_activation,
            dtype="float32",
            name="output",
        )

    def build(self, input_shape):
        shape = self.compute_pooled_shape(input_shape)
        for layer in self.hidden:
            layer.build(shape)
            shape = (*shape[:-1], layer.units)
        self.output_layer.build(shape)
        self.built = True

    def compute_pooled_shape(self, input_shape) -> tuple:
        """Shape of `pool`'s output for an input of ``input_shape``."""
        input_shape = tuple(input_shape)
        if self.pooling is None or len(input_shape) == 2:
            return input_shape
        if self.pooling == "flatten":
            size = 1
            for dim in input_shape[1:]:
                size = None if dim is None or size is None else size * dim
            return (input_shape[0], size)
        return (input_shape[0], input_shape[-1])

    def pool(self, features, mask=None):
        """Pools base features to one vector per example."""
        rank = len(features.shape)
        if self.pooling is None or rank == 2:
            return features
        if self.pooling == "flatten":
            return ops.reshape(features, (ops.shape(features)[0], -1))
        axes = tuple(range(1, rank - 1))
        if mask is not None and rank == 3:
            weights = ops.expand_dims(ops.cast(mask, features.dtype), -1)
            if self.pooling == "max":
                return ops.max(features + (weights - 1.0) * 1e9, axis=1)
            total = ops.sum(features * weights, axis=1)
            return total / ops.maximum(ops.sum(weights, axis=1), 1.0)
        if self.pooling == "max":
            return ops.max(features, axis=axes)
        return ops.mean(features, axis=axes)

    def pool_inputs(self, inputs):
        """Pools what the head is called on in its model (see `split_inputs`)."""
        features, mask = split_inputs(inputs)
        return self.pool(features, mask=mask)

    def classify(self, pooled, training=None):
        """Hidden layers, dropout and the output layer, on pooled features."""
        return self.predict_from(self.represent(pooled, training), training)

    def represent(self, pooled, training=None):
        """What the output layer reads: the last hidden layer, or ``pooled``."""
        x = pooled
        for dropout, dense in zip(self.dropouts, self.hidden):
            x = dense(dropout(x, training=training))
        return x

    def predict_from(self, features, training=None):
        """The last dropout and the output layer, on `represent`'s features."""
        return self.output_layer(self.dropouts[-1](features, training=training))

    def logits_from(self, features, training=None):
        """`predict_from` before the output activation (what MCC reads)."""
        x = self.dropouts[-1](features, training=training)
        layer = self.output_layer
        logits = ops.matmul(ops.cast(x, layer.kernel.dtype), layer.kernel)
        return logits + layer.bias if layer.use_bias else logits

    def call(self, inputs, training=None, mask=None):
        outputs = self.classify(self.pool(inputs, mask=mask), training=training)
        # Training (and `classify`, which the feature cache trains) sees the
        # raw probabilities; inference sees the calibrated ones.
        return outputs if training else self.calibrate(outputs)

    def calibrate(self, probabilities):
        """Applies ``temperature`` to softmax outputs (identity when it is 1).

        Softmax is shift invariant, so ``log(p)`` are the logits up to a
        constant; probabilities are floored at 1e-37 first (float32 range).
        """
        if self.task != "multiclass" or self.temperature == 1.0:
            return probabilities
        logits = ops.log(ops.maximum(probabilities, 1e-37))
        return ops.softmax(logits / self.temperature, axis=-1)

    def set_calibration(
        self, temperature: float = 1.0, rejection_threshold: float | None = None
    ) -> None:
        """Sets the temperature and rejection threshold (see the class doc).

        A `tltf.TransferModel` traces its predict and test steps again when
        the temperature changed (`traced_settings`).

        Raises:
            ConfigError: A non-multiclass head, a temperature that is not
                positive, or a threshold outside [0, 1].
        """
        temperature = float(temperature)
        if temperature == 1.0 and rejection_threshold is None:
            self.temperature, self.rejection_threshold = 1.0, None
            return
        if self.task != "multiclass":
            raise ConfigError(
                "Temperature and rejection threshold apply to multiclass heads "
                f"(softmax); this head's task is {self.task!r}."
            )
        if not 0.0 < temperature < float("inf"):
            raise ConfigError(
                f"temperature must be a positive number. Received: {temperature!r}"
            )
        if rejection_threshold is not None and not 0.0 <= rejection_threshold <= 1:
            raise ConfigError(
                "rejection_threshold must be a probability in [0, 1], or None. "
                f"Received: {rejection_threshold!r}"
            )
        self.temperature = temperature
        self.rejection_threshold = (
            None if rejection_threshold is None else float(rejection_threshold)
        )

    def traced_settings(self) -> tuple:
        """The settings a traced graph of this head holds (`tltf.traced`)."""
        return (self.temperature,)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_outputs)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_outputs": self.num_outputs,
            "task": self.task,
            "pooling": self.pooling,
            "dropout": self.dropout,
            "hidden_units": list(self.hidden_units),
            "activation": self.activation,
            "temperature": self.temperature,
            "rejection_threshold": self.rejection_threshold,
        }


def split_inputs(inputs: Any) -> tuple[Any, Any]:
    """Splits a head's inputs in its model into ``(features, mask)``.

    A head is called on one tensor of base features, or, when it pools over
    tokens, as ``head(sequence, mask=padding_mask)``; Keras then records its
    input as the list ``[sequence, padding_mask]`` (``head.input``, and the
    output of a model that ends at the head's input).

    Args:
        inputs: A tensor, or a list or tuple ``[features, mask]``.

    Returns:
        The features and the mask (None without one).
    """
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != 2:
            raise ConfigError(
                "A head takes base features, optionally with a padding mask. "
                f"Received {len(inputs)} inputs."
            )
        return inputs[0], inputs[1]
    return inputs, _compat.keras_mask(inputs)


def _validate_head(num_outputs, task, pooling, dropout) -> None:
    if task not in TASKS:
        raise ConfigError(f"Unknown head task {task!r}; use one of {TASKS}.")
    if pooling not in POOLINGS:
        raise ConfigError(f"Unknown pooling {pooling!r}; use one of {POOLINGS}.")
    if not isinstance(num_outputs, int) or num_outputs < 1:
        raise ConfigError(
            f"num_classes must be a positive integer. Received: {num_outputs!r}"
        )
    if task == "multiclass" and num_outputs < 2:
        raise ConfigError(
            "A multiclass head needs num_classes >= 2 (softmax over one class "
            "always predicts it). For a yes/no task use num_classes=2, or "
            f"task='multilabel' with one output. Received: num_classes={num_outputs}"
        )
    arguments.fraction("dropout", dropout)


def compile_defaults(head: Head) -> dict[str, Any]:
    """Loss and metrics that fit ``head``'s task.

    Multiclass heads train on integer labels (sparse categorical
    cross-entropy) and report accuracy with macro precision, recall and F1;
    multilabel heads use binary cross-entropy with the same metrics per
    label; regression uses mean squared error with MAE and RMSE.

    Args:
        head: The model's head.

    Returns:
        Keyword arguments for ``model.compile`` (without the optimizer).
    """
    n = head.num_outputs
    if head.task == "multiclass":
        return {
            "loss": keras.losses.SparseCategoricalCrossentropy(),
            "metrics": [
                keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
                MacroPrecision(n),
                MacroRecall(n),
                MacroF1(n),
            ],
        }
    if head.task == "multilabel":
        return {
            "loss": keras.losses.BinaryCrossentropy(),
            "metrics": [
                keras.metrics.BinaryAccuracy(name="accuracy"),
                MacroPrecision(n, multi_label=True),
                MacroRecall(n, multi_label=True),
                MacroF1(n, multi_label=True),
            ],
        }
    return {
        "loss": keras.losses.MeanSquaredError(),
        "metrics": [
            keras.metrics.MeanAbsoluteError(name="mae"),
            keras.metrics.RootMeanSquaredError(name="rmse"),
        ],
    }


def find_head(model: keras.Model) -> Head | None:
    """The one `Head` among ``model``'s layers; None for none or several.

    The search for a model from outside tltf (a user's functional model, a
    ``.keras`` file of another kind): a `tltf.TransferModel` locates its
    parts once (``model.head``), and tltf reads them through
    `tltf.model.parts_of`.
    """
    found = [layer for layer in getattr(model, "layers", []) if isinstance(layer, Head)]
    return found[0] if len(found) == 1 else None
