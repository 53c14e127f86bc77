"""`distill`: one call from a teacher and a student to a trained student."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from tltf import arguments
from tltf.builders import DEFAULT_LEARNING_RATE
from tltf.data.inputs import as_list
from tltf.distribute.scope import resolve_strategy, strategy_scope
from tltf.errors import ConfigError
from tltf.model import check_data, require_model
from tltf.training.distill.data import prepare_distillation_data
from tltf.training.distill.distiller import Distiller
from tltf.training.distill.loss import (
    DEFAULT_ALPHA,
    DEFAULT_TEMPERATURE,
    validate_distillation,
)


def distill(
    teacher: keras.Model,
    student: keras.Model,
    train_data: Any,
    val_data: Any = None,
    *,
    unlabeled: Any = None,
    temperature: float = DEFAULT_TEMPERATURE,
    alpha: float = DEFAULT_ALPHA,
    epochs: int = 5,
    batch_size: int | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    learning_rate: float = DEFAULT_LEARNING_RATE,
    metrics: Sequence[Any] | None = None,
    cache_teacher: bool = True,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    seed: int | None = None,
    strategy: tf.distribute.Strategy | str | None = None,
    verbose: str | int = "auto",
) -> keras.Model:
    """Distills ``teacher`` into ``student`` and returns the trained student.

    The student's trainable weights are trained on the mix documented in
    `tltf.training.distill.loss` (``alpha * CE + (1 - alpha) * T**2 * KL``); the
    teacher stays frozen in inference mode. A tltf model's base is frozen
    when built: call `tltf.unfreeze_backbone(student)` first to train it all.

    With ``cache_teacher`` (the default) the teacher labels every training
    and validation example once, before the first epoch, and the examples,
    labels and teacher probabilities are kept in memory and reshuffled every
    epoch; this is exact when the input pipeline is deterministic (the
    student's own ``augment_*`` layers are fine: the teacher then labels the
    un-augmented example). Set it to False for pipelines that augment at
    random in ``tf.data``, repeat forever, or do not fit in memory: the
    teacher then runs on every batch, and unlabeled batches are interleaved
    at random with the labelled ones.

    Args:
        teacher: A trained model with softmax outputs.
        student: A model with softmax outputs over the same classes.
        train_data: Batched ``tf.data.Dataset`` of ``(inputs, int label)``,
            an ``(x, y)`` tuple of arrays, or a `tltf.data.LoadedData`
            (its validation split is used when ``val_data`` is None). Labels
            of ``-1`` mark unlabeled examples.
        val_data: Validation data in the same forms, or None.
        unlabeled: Extra inputs without labels (array, or dataset of inputs
            or ``(inputs, ...)``); they get only the distillation term.
        temperature: Softening temperature ``T`` > 0.
        alpha: Weight of the hard-label loss, in [0, 1].
        epochs: Training epochs.
        batch_size: Batch size; None keeps the size of ``train_data``'s
            first batch (32 for arrays).
        optimizer: The student's optimizer; None for Adam(learning_rate).
        learning_rate: Learning rate of the default optimizer.
        metrics: Student metrics; None for its head's defaults.
        cache_teacher: Compute teacher outputs once (see above).
        callbacks: Keras callbacks for ``fit``.
        seed: Seed of the per-epoch order of the training examples.
        strategy: A ``tf.distribute.Strategy`` or a `tltf.get_strategy`
            kind; None uses the one the student was built under (else the
            current one). Teacher and student must have been built in its
            scope; the distiller and its optimizer are created in it.
        verbose: ``fit`` verbosity.

    Returns:
        The same ``student`` object, trained: a plain model that saves and
        exports like any other (no distillation wrapper inside).

    Raises:
        ConfigError: Bad temperature, alpha or epochs, incompatible models, a
            student without trainable weights, caching an infinite dataset,
            or a model built under another strategy.
        DataError: Empty data, or labels that are not integers in range.

    Example:
        >>> student = tltf.distill(teacher, student, (x, y), unlabeled=x_extra,
        ...                        temperature=4.0, alpha=0.1, epochs=3)
    """
    validate_distillation(temperature, alpha)
    _check_training_args(student, epochs)
    if optimizer is None:
        arguments.rate("learning_rate", learning_rate)
    if not isinstance(train_data, (tuple, list)):  # Array labels may be -1.
        check_data(student, train_data, "train_data")
    resolve_strategy(strategy, teacher)
    with strategy_scope(strategy, student):
        distiller = Distiller(teacher, student, temperature=temperature, alpha=alpha)
        distiller.compile(
            optimizer=optimizer or keras.optimizers.Adam(learning_rate),
            metrics=metrics,
        )
    train, val = prepare_distillation_data(
        teacher,
        train_data,
        val_data,
        unlabeled=unlabeled,
        num_classes=distiller.num_classes,
        batch_size=batch_size,
        cache_teacher=cache_teacher,
        seed=seed,
    )
    distiller.fit(
        train,
        validation_data=val,
        epochs=epochs,
        callbacks=as_list(callbacks),
        shuffle=False,  # The data shuffles itself (cached data: every epoch).
        verbose=verbose,
    )
    return student


def _check_training_args(student: keras.Model, epochs: Any) -> None:
    arguments.count("epochs", epochs)
    require_model(student, "student")
    if not student.trainable_weights:
        raise ConfigError(
            "The student has no trainable weights, so distillation would not "
            "change it. A tltf model's base is frozen when built: call "
            "tltf.unfreeze_backbone(student) (or unfreeze some groups) first. "
            f"Received: student {student.name!r} with 0 trainable weights."
        )
