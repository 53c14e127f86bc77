"""`adapt_domain`: train on a labelled source domain, adapt to an unlabelled target.

The model trains on source batches as in ``fit`` while each step also draws
a batch of target inputs and makes the features the output layer reads
look alike across the domains: adversarially (``"dann"``) or by aligning
their statistics (``"coral"``, ``"mmd"``). It runs ``model.fit`` itself, so
callbacks (`tltf.StagedUnfreezing`, ``BackupAndRestore``, early stopping),
per-group rates, strategies and mixed precision work as in training, and
a `CollapseGuard` stops an adaptation that overpowered the task.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tltf import _compat, arguments
from tltf.data.inputs import as_batched, as_list, as_unlabeled, first_batch
from tltf.distribute.scope import strategy_scope
from tltf.errors import ConfigError, DataError
from tltf.model import TransferModel, check_data, check_inputs, parts_of
from tltf.parts import ModelParts, require_head
from tltf.training.domain.guard import CollapseGuard, chance_loss
from tltf.training.domain.losses import Kernel
from tltf.training.domain.methods import make_method
from tltf.training.domain.step import AdaptationStep
from tltf.training.fitting import fit_data
from tltf.training.unfreezing.callback import StagedUnfreezing

#: Which features `adapt_domain` can align.
ALIGN = ("auto", "pooled", "hidden")


def adapt_domain(
    model: keras.Model,
    source: Any,
    target: Any,
    *,
    method: str = "dann",
    epochs: int = 10,
    validation_data: Any = None,
    weight: float = 1.0,
    schedule: str = "ramp",
    discriminator: keras.layers.Layer | None = None,
    kernel: Kernel | None = None,
    align: str = "auto",
    batch_size: int | None = None,
    callbacks: Sequence[keras.callbacks.Callback] | None = None,
    verbose: str | int = "auto",
) -> keras.Model:
    """Trains ``model`` on labelled ``source`` data so that it also fits ``target``.

    Each step trains on a source batch (the compiled loss) and draws a batch
    of the unlabelled target inputs; the pooled base features (or, with a
    frozen base, the head's last hidden layer) are pushed to look alike in
    both domains. ``"dann"`` trains a domain discriminator through a
    gradient-reversal layer (Ganin et al., JMLR 2016); ``"coral"`` aligns the
    feature covariances (Sun & Saenko 2016); ``"mmd"`` the kernel mean
    embeddings (Long et al. 2015). The weight of that term ramps up from 0 as
    in the DANN paper. Nothing is added to the model: it saves, exports and
    serves as before.

    Args:
        model: A compiled tltf classifier. What can adapt is what is
            trainable: unfreeze base groups (`tltf.set_trainable_groups`,
            `tltf.StagedUnfreezing`) or build the head with ``hidden_units``.
        source: Labelled source data in any form `fit_frozen_head` takes.
        target: Unlabelled target inputs: an array, a list of strings, a
            batched dataset of inputs (labels, if any, are ignored) or a
            `tltf.data.LoadedData` (its training split, labels ignored).
        method: ``"dann"``, ``"coral"`` or ``"mmd"``.
        epochs: Passes over the source data (target batches are drawn
            alongside, reshuffled and repeated as needed).
        validation_data: Labelled *target* data to report on each epoch
            (``val_*`` logs), or None.
        weight: The largest weight of the adaptation term.
        schedule: ``"ramp"`` (``weight * (2 / (1 + exp(-10 p)) - 1)`` at
            training progress ``p``) or ``"constant"``.
        discriminator: DANN's domain classifier, features -> one logit;
            None for the reference one: two ReLU layers of 1024, each with
            dropout 0.5 (`tltf.training.domain.default_discriminator`).
        kernel: MMD's ``kernel(a, b)``; None for the sum of five Gaussian
            kernels (as the reference DAN code sums them).
        align: Which features to align: ``"pooled"`` (the base's pooled
            output, as DANN aligns its feature extractor's), ``"hidden"``
            (what the output layer reads: the head's last hidden layer), or
            ``"auto"``: pooled when the base trains (trainable groups or a
            `tltf.StagedUnfreezing` callback), else hidden.
        batch_size: Batch size for arrays and lists (source and target);
            None for 32, or the source dataset's own batches.
        callbacks: Keras callbacks.
        verbose: As in ``fit``.

    Returns:
        ``model`` itself, adapted. ``model.history`` logs ``task_loss``,
        ``adaptation_loss``, ``adaptation_weight``, ``domain_accuracy``
        (a domain classifier's accuracy on the batches: near 0.5 when the
        domains look alike) and ``feature_spread`` (how far apart the
        examples' aligned features are, 0 to 1: 0 when all alike) besides
        the compiled metrics. If aligning overpowers the task (the features
        all alike, or the task loss back at a guess's after it had learnt),
        training stops, the weights of the epoch with the lowest task loss
        come back and a warning says so (`CollapseGuard`).

    Raises:
        ConfigError: Not a compiled tltf classifier, nothing trainable before
            the output layer, an unknown method or schedule, a negative
            ``weight`` or a bad count.
        DataError: Empty target data, or target inputs of another kind or
            shape than the model takes.

    Example:
        >>> model = tltf.build_image_classifier(
        ...     "keras:mobilenet_v2", 3, weights=None, input_shape=(32, 32, 3),
        ...     hidden_units=(64,))
        >>> tltf.adapt_domain(model, (x_source, y_source), x_target, epochs=2)
    """
    weight = arguments.positive_number("weight", weight, zero=True)
    epochs = arguments.count("epochs", epochs)
    if batch_size is not None:
        batch_size = arguments.count("batch_size", batch_size)
    callbacks = as_list(callbacks)
    parts = parts_of(model)
    align = _check_model(model, parts, callbacks, align)
    if schedule not in ("ramp", "constant"):
        raise ConfigError(
            "schedule must be 'ramp' (DANN's) or 'constant'. "
            f"Received: schedule={schedule!r}"
        )
    chosen = make_method(method, discriminator, kernel)
    check_data(model, source, "source")
    train = as_batched(source, batch_size, what="source", shuffle=True)
    first = first_batch(train, "source", "Pass at least one labelled example.")
    batch_size = int(tf.shape(tf.nest.flatten(first)[0])[0])
    targets = target_batches(model, target, batch_size)
    steps = _steps(train)
    with strategy_scope(model=model):
        step = AdaptationStep(
            model,
            chosen,
            weight=weight,
            ramped=schedule == "ramp",
            total_steps=steps * int(epochs),
            learning_rate=_learning_rate(model),
            align=align,
        )
        chosen.domain_classifier.build((None, _feature_dim(step.parts, align)))
        step.optimizer.build(chosen.variables)
        if not model.optimizer.built and _compat.can_symbolic_build(model):
            _compat.symbolic_build(model, first)
    paired = tf.data.Dataset.zip((train, targets))
    return _run(model, step, paired, validation_data, epochs, callbacks, verbose)


def _run(model, step, paired, validation_data, epochs, callbacks, verbose):
    """``fit`` with the adaptation step attached, detached whatever happens."""
    resets = keras.callbacks.LambdaCallback(on_epoch_begin=lambda *_: step.reset())
    guard = CollapseGuard(
        step.weight, chance_loss(step.head.task, step.head.num_outputs)
    )
    with model.train_step_replaced(step):
        fit_data(
            model,
            paired,
            validation_data,
            epochs=int(epochs),
            callbacks=[resets, guard, *callbacks],
            verbose=verbose,
        )
    return model


def target_batches(model: keras.Model, target: Any, batch_size: int) -> tf.data.Dataset:
    """The target inputs as an endless dataset of batches of ``batch_size``.

    Arrays and lists are reshuffled on every pass; a dataset keeps its own
    batching and order (labels dropped).

    Raises:
        DataError: Empty target data, or inputs the model does not take.
    """
    ds = as_unlabeled(target, batch_size, what="target", shuffle=True)
    check_inputs(model, ds, "target")
    _check_target_shape(model, ds)
    return ds.repeat().prefetch(tf.data.AUTOTUNE)


def _check_target_shape(model: keras.Model, ds: tf.data.Dataset) -> None:
    spec = tf.nest.flatten(ds.element_spec)
    wanted = tf.nest.flatten(model.inputs)
    if len(spec) != len(wanted):
        raise DataError(
            f"target has {len(spec)} input(s) per example; model '{model.name}' "
            f"takes {len(wanted)}."
        )
    for got, want in zip(spec, wanted):
        got_shape, want_shape = list(got.shape[1:]), list(want.shape[1:])
        fits = len(got_shape) == len(want_shape) and all(
            a is None or b is None or a == b for a, b in zip(got_shape, want_shape)
        )
        if not fits:
            raise DataError(
                f"target inputs have shape {got_shape} per example; model "
                f"'{model.name}' takes {want_shape}. Resize the target data like "
                "the source (or pass a batched dataset of inputs)."
            )
    for _ in ds.take(1):
        return
    raise DataError("target is empty. Pass at least one target input.")


def _check_model(
    model: keras.Model, parts: ModelParts, callbacks: list, align: str
) -> str:
    """Checks the model can adapt; returns the features to align."""
    try:
        head = require_head(parts)
    except ConfigError as err:
        raise ConfigError(f"adapt_domain needs a tltf classifier: {err}") from err
    if not isinstance(model, TransferModel):
        raise ConfigError(
            f"Model '{model.name}' is not a tltf.TransferModel; build it with "
            "tltf.build_image_classifier or tltf.build_text_classifier."
        )
    if not model.compiled:
        raise ConfigError(
            f"Model '{model.name}' is not compiled. Call tltf.compile_model(model) "
            "or model.compile(...) before adapt_domain."
        )
    if align not in ALIGN:
        raise ConfigError(
            f"align must be one of {list(ALIGN)}. Received: align={align!r}"
        )
    head_ids = {id(v) for v in head.trainable_variables}
    base_trains = any(id(v) not in head_ids for v in model.trainable_variables) or any(
        isinstance(cb, StagedUnfreezing) for cb in callbacks
    )
    if align == "auto":
        align = "pooled" if base_trains else "hidden"
    if align == "hidden" and not head.hidden and not base_trains:
        raise ConfigError(
            f"Nothing before the output layer of '{model.name}' can train, so "
            "there is nothing to adapt. Unfreeze base groups "
            "(tltf.set_trainable_groups(model, [...]) or a tltf.StagedUnfreezing "
            "callback), or build the head with hidden_units=(256,)."
        )
    if align == "pooled" and not base_trains:
        raise ConfigError(
            f"The base of '{model.name}' is frozen, so its pooled features cannot "
            "adapt. Unfreeze base groups, or pass align='hidden' with a head "
            "built with hidden_units."
        )
    return align


def _learning_rate(model: keras.Model) -> float:
    """The model's current rate: the discriminator learns as fast (as in DANN)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def _feature_dim(parts: ModelParts, align: str) -> int:
    if align == "hidden" and parts.head.hidden:
        return int(parts.head.hidden[-1].units)
    return int(parts.pooled_shape()[-1])


def _steps(ds: tf.data.Dataset) -> int:
    steps = int(ds.cardinality())
    if steps >= 0:
        return steps
    return int(ds.reduce(np.int64(0), lambda n, _: n + 1))
