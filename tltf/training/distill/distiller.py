"""`Distiller`: a Keras model that trains a student on a frozen teacher.

Calling it runs the student; ``fit`` minimises the mix of
`tltf.training.distill.loss`. Only the student's weights are trained.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from tltf import _compat
from tltf.errors import ConfigError
from tltf.heads import compile_defaults
from tltf.model import describe, input_signature, parts_of, same_inputs
from tltf.training.distill.loss import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    distillation_terms,
    validate_distillation,
)


@keras.saving.register_keras_serializable(package="tltf")
class Distiller(_compat.BuiltBeforeTracing, keras.Model):
    """Trains a student on a frozen teacher's softened probabilities and labels.

    Calling the distiller runs the student. The loss is the mix documented
    in `tltf.training.distill.loss`: ``alpha * CE(labels, student) +
    (1 - alpha) * T**2 * KL(teacher_T || student_T)``, where examples
    labelled ``-1`` get only the KL term. Only the student's trainable
    weights are trained; the teacher runs with ``training=False`` and its
    ``trainable`` flags are left as they are.

    Targets are either integer labels (the teacher then runs on every batch)
    or a dict ``{"labels": ..., "teacher_probs": ...}`` with teacher
    probabilities computed beforehand (see `distill`, which computes them
    once). Metrics compare the student with the labels, skipping examples
    labelled ``-1``.

    Args:
        teacher: A trained model with softmax outputs.
        student: The model to train, softmax outputs over the same classes.
        temperature: Softening temperature ``T`` > 0.
        alpha: Weight of the hard-label loss, in [0, 1].
        **kwargs: Standard model arguments (``name``).

    Raises:
        ConfigError: Bad temperature or alpha, a non-multiclass tltf head, or
            teacher and student with different numbers of classes.

    Example:
        >>> distiller = tltf.Distiller(teacher, student, temperature=4.0,
        ...                            alpha=0.1)
        >>> distiller.compile(keras.optimizers.Adam(1e-3))
        >>> distiller.fit(x, y, epochs=2)
    """

    def __init__(
        self,
        teacher: keras.Model,
        student: keras.Model,
        temperature: float = DEFAULT_TEMPERATURE,
        alpha: float = DEFAULT_ALPHA,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", "distiller")
        super().__init__(**kwargs)
        validate_distillation(temperature, alpha)
        if teacher is student:
            raise ConfigError(
                "The teacher and the student are the same model: training the "
                "student would change the teacher it learns from. Build a separate "
                "(usually smaller) student model."
            )
        self.num_classes = check_compatible(teacher, student)
        self.teacher = teacher
        self.student = student
        self.temperature = float(temperature)
        self.alpha = float(alpha)
        self.student_loss_tracker = keras.metrics.Mean(name="student_loss")
        self.distillation_loss_tracker = keras.metrics.Mean(name="distillation_loss")

    # --- only the student trains ---
    @property
    def trainable_weights(self) -> list:
        return self.student.trainable_weights

    @property
    def trainable_variables(self) -> list:
        return self.student.trainable_variables

    @property
    def non_trainable_weights(self) -> list:
        trained = {id(v) for v in self.trainable_weights}
        return [v for v in self.weights if id(v) not in trained]

    @property
    def non_trainable_variables(self) -> list:
        trained = {id(v) for v in self.trainable_variables}
        return [v for v in self.variables if id(v) not in trained]

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def compile(
        self,
        optimizer: str | keras.optimizers.Optimizer = "adam",
        metrics: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Configures training; the loss is always the distillation mix.

        Args:
            optimizer: The student's optimizer.
            metrics: Metrics of the student against the labels; None for the
                student's head defaults (accuracy, macro precision/recall/F1).
            **kwargs: Other ``keras.Model.compile`` arguments except ``loss``.

        Raises:
            ConfigError: A ``loss`` was passed.
        """
        if kwargs.pop("loss", None) is not None:
            raise ConfigError(
                "Distiller.compile takes no loss: the loss is the distillation "
                "mix set by temperature and alpha. Received: a loss argument."
            )
        if metrics is None:
            metrics = default_metrics(self.student, self.num_classes)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        labels, teacher_probs = self._targets(x, y)
        if y_pred is None:
            y_pred = self(x, training=training)
        hard, soft = distillation_terms(labels, teacher_probs, y_pred, self.temperature)
        weights = ops.ones_like(hard)
        if sample_weight is not None:
            weights = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        per_example = (self.alpha * hard + (1.0 - self.alpha) * soft) * weights
        batch = ops.cast(ops.shape(per_example)[0], "float32")
        loss = ops.sum(per_example) / batch
        self._track(labels, hard * weights, soft * weights, batch)
        loss = _scale_for_replicas(loss)
        for extra in self.student.losses:
            loss = loss + ops.cast(ops.sum(extra), loss.dtype)
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        labels = self._labels(y)
        labelled = ops.cast(labels >= 0, "float32")
        if sample_weight is not None:
            labelled = labelled * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        safe = ops.where(labels >= 0, labels, 0)
        return super().compute_metrics(x, safe, y_pred, sample_weight=labelled)

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Distiller:
        config = dict(config)
        config["teacher"] = keras.saving.deserialize_keras_object(config["teacher"])
        config["student"] = keras.saving.deserialize_keras_object(config["student"])
        return cls(**config)

    # --- helpers ---
    def _labels(self, y):
        labels = y["labels"] if isinstance(y, dict) else y
        return ops.reshape(ops.cast(labels, "int32"), (-1,))

    def _targets(self, x, y):
        if isinstance(y, dict) and "teacher_probs" in y:
            return self._labels(y), y["teacher_probs"]
        teacher_probs = ops.stop_gradient(self.teacher(x, training=False))
        return self._labels(y), teacher_probs

    def _track(self, labels, hard, soft, batch) -> None:
        count = ops.sum(ops.cast(labels >= 0, "float32"))
        mean_hard = ops.sum(hard) / ops.maximum(count, 1.0)
        self.student_loss_tracker.update_state(mean_hard, sample_weight=count)
        self.distillation_loss_tracker.update_state(
            ops.sum(soft) / batch, sample_weight=batch
        )


def check_compatible(teacher: keras.Model, student: keras.Model) -> int:
    """Checks that teacher and student output probabilities over the same classes.

    Returns:
        The number of classes.

    Raises:
        ConfigError: Not Keras models, a tltf head that is not multiclass,
            inputs of another kind or shape (text and images), or different
            numbers of outputs.
    """
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ConfigError(
                f"The {role} must be a keras.Model (e.g. built by a tltf "
                f"builder). Received: {type(model).__name__}"
            )
        head = parts_of(model).head
        if head is not None and head.task != "multiclass":
            raise ConfigError(
                "Distillation needs softmax (multiclass) outputs; the "
                f"{role}'s head has task={head.task!r}. Received: {model.name}"
            )
    inputs = [input_signature(model) for model in (teacher, student)]
    if None not in inputs and not same_inputs(*inputs):
        raise ConfigError(
            "Teacher and student must take the same inputs: the same batches "
            f"feed both. Received: a teacher that takes {describe(inputs[0])}, a "
            f"student that takes {describe(inputs[1])}. Build the student for "
            "the teacher's inputs."
        )
    sizes = [_num_outputs(model) for model in (teacher, student)]
    if None not in sizes and sizes[0] != sizes[1]:
        raise ConfigError(
            "Teacher and student must predict the same classes. Received: "
            f"teacher with {sizes[0]} outputs, student with {sizes[1]}."
        )
    return sizes[1] or sizes[0] or 0


def default_metrics(student: keras.Model, num_classes: int) -> list[Any]:
    """The student head's default metrics, or accuracy for other models."""
    head = parts_of(student).head
    if head is not None:
        return compile_defaults(head)["metrics"]
    return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]


def _num_outputs(model: keras.Model) -> int | None:
    try:
        shape = model.output_shape
    except (AttributeError, ValueError):
        return None
    if isinstance(shape, list | tuple) and shape and isinstance(shape[0], tuple):
        raise ConfigError(
            "Distillation needs a model with one output. Received: "
            f"{model.name!r} with output shapes {shape}."
        )
    return shape[-1] if shape else None


def _scale_for_replicas(loss):
    # Replicas' gradients are summed, so each replica's loss is divided by
    # their number, as Keras losses do.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    if replicas > 1:
        loss = loss / float(replicas)
    return loss
